// Paging over a search's page tokens: the token of every page seen is kept, so Previous works.
export class Paging {
  tokens = $state<string[]>(['']);
  next = $state('');

  get page(): number {
    return this.tokens.length;
  }
  get current(): string {
    return this.tokens[this.tokens.length - 1];
  }
  reset(): void {
    this.tokens = [''];
    this.next = '';
  }
  forward(): void {
    if (this.next) this.tokens = [...this.tokens, this.next];
  }
  back(): void {
    if (this.tokens.length > 1) this.tokens = this.tokens.slice(0, -1);
  }
}
