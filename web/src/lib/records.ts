// A service's record pages come from its descriptor, not from code per service. A service of
// the standard shape (customer, product; user and promotion too) has, for a record type X:
// Get<X>ById(SearchId) -> X, a search Get<X>s(SearchParams with page_size/page_token) returning
// a repeated X and next_page_token, Create<X>(X), Update<X>(X), Delete<X>(SearchId), and the
// dry runs Before{Create,Update,Delete}<X>(X) -> ValidationErr.
import { create, type DescField, type DescMessage, type DescMethod, type DescService } from '@bufbuild/protobuf';
import type { SuiteService } from './suite';
import { suite } from './suite';

export interface RecordKind {
  service: SuiteService;
  /** "Customer" */
  noun: string;
  record: DescMessage;
  get: DescMethod;
  search: DescMethod;
  /** The repeated record field of the search's answer. */
  results: DescField;
  create?: DescMethod;
  update?: DescMethod;
  remove?: DescMethod;
  beforeCreate?: DescMethod;
  beforeUpdate?: DescMethod;
  beforeDelete?: DescMethod;
}

function method(service: DescService, name: string): DescMethod | undefined {
  return service.methods.find((m) => m.name === name);
}

export function recordKind(service: SuiteService): RecordKind | undefined {
  const descriptor = service.descriptor;
  for (const get of descriptor.methods) {
    const noun = /^Get(\w+)ById$/.exec(get.name)?.[1];
    if (!noun || get.methodKind !== 'unary') continue;
    const record = get.output;
    const search = descriptor.methods.find(
      (m) =>
        m.methodKind === 'unary' &&
        m.input.fields.some((f) => f.name === 'page_token') &&
        m.output.fields.some((f) => f.fieldKind === 'list' && f.message?.typeName === record.typeName)
    );
    if (!search) continue;
    const results = search.output.fields.find(
      (f) => f.fieldKind === 'list' && f.message?.typeName === record.typeName
    )!;
    return {
      service,
      noun,
      record,
      get,
      search,
      results,
      create: method(descriptor, `Create${noun}`),
      update: method(descriptor, `Update${noun}`),
      remove: method(descriptor, `Delete${noun}`),
      beforeCreate: method(descriptor, `BeforeCreate${noun}`),
      beforeUpdate: method(descriptor, `BeforeUpdate${noun}`),
      beforeDelete: method(descriptor, `BeforeDelete${noun}`)
    };
  }
  return undefined;
}

/** Every service with record pages, in suite order. */
export const recordKinds: RecordKind[] = suite
  .map(recordKind)
  .filter((kind): kind is RecordKind => kind !== undefined);

export function kindByName(name: string): RecordKind | undefined {
  return recordKinds.find((kind) => kind.service.name === name);
}

const LABELS: Record<string, string> = {
  pwd: 'Password',
  firstname: 'First name',
  lastname: 'Last name',
  e_uid: 'User id'
};

/** "validity_dates" -> "Validity dates", "upc_code" -> "UPC code". */
export function label(field: DescField | string): string {
  const name = typeof field === 'string' ? field : field.name;
  if (name in LABELS) return LABELS[name];
  const words = name.split('_').map((w) => (['upc', 'id'].includes(w) ? w.toUpperCase() : w));
  const text = words.join(' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const TIMESTAMP = 'google.protobuf.Timestamp';
const STRUCT = 'google.protobuf.Struct';

export function isTimestamp(field: DescField): boolean {
  return field.fieldKind === 'message' && field.message.typeName === TIMESTAMP;
}

export function isStruct(field: DescField): boolean {
  return field.fieldKind === 'message' && field.message.typeName === STRUCT;
}

/** Set by the service, never by a form: the record's id, its change dates and who changed it. */
export function serviceSet(field: DescField, topLevel: boolean): boolean {
  if (topLevel && field.name === 'id') return true;
  if (field.fieldKind === 'message' && field.message.name === 'Modifications') return true;
  return ['create_date', 'update_date', 'prev_approval_status'].includes(field.name);
}

/** Accepted but never returned (user.pwd): a password input, left empty means unchanged. */
export function isSecret(field: DescField): boolean {
  return field.name === 'pwd' || field.name === 'password';
}

/** The columns of a search's result table: the record's plain fields, secrets left out. */
export function columns(record: DescMessage): DescField[] {
  return record.fields
    .filter((f) => !isSecret(f) && (f.fieldKind === 'scalar' || f.fieldKind === 'enum' || isTimestamp(f)))
    .slice(0, 8);
}

/** The search form's filters: the search message's fields except paging. */
export function filters(search: DescMethod): DescField[] {
  return search.input.fields.filter((f) => !['page_size', 'page_token'].includes(f.name));
}

/** A record's name for people: its name, else first and last name, else its id. */
export function displayName(value: Record<string, unknown>): string {
  const name = value['name'];
  if (typeof name === 'string' && name) return name;
  const person = [value['firstname'], value['lastname']].filter((p) => typeof p === 'string' && p);
  if (person.length) return person.join(' ');
  return `#${String(value['id'] ?? '')}`;
}

/** The enum value's name without its prefix: ROLE_ADMIN -> "admin". */
export function enumLabel(field: DescField, number: number): string {
  if (field.fieldKind !== 'enum' && !(field.fieldKind === 'list' && field.listKind === 'enum')) {
    return String(number);
  }
  const value = field.enum.values.find((v) => v.number === number);
  if (number === 0 && value?.localName === 'UNSPECIFIED') return 'default';
  return value ? value.localName.toLowerCase().replace(/_/g, ' ') : String(number);
}

/** value with every nested message a form edits present (ValidityDates and the like), so the
 * form binds to them; Timestamp and Struct fields stay unset until given. */
export function withNested<T extends Record<string, any>>(desc: DescMessage, value: T): T {
  for (const field of desc.fields) {
    if (field.fieldKind !== 'message' || isTimestamp(field) || isStruct(field) || field.oneof) continue;
    const current = (value as Record<string, any>)[field.localName];
    (value as Record<string, any>)[field.localName] = withNested(field.message, current ?? create(field.message));
  }
  return value;
}
