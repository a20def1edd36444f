// How the pages reach the suite: Connect (JSON) to the gateway on the page's own origin. Every
// call carries a fresh x-request-id (the services log it); an error keeps it, so the page can
// show it. Calls with a session carry its access token and, refused as unauthenticated, are
// sent once more after a token refresh (as the CLIs do).
import { Code, ConnectError, createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import type { DescService } from '@bufbuild/protobuf';

const requestIds = new WeakMap<object, string>();

/** The request id of the call that failed with error ("" when it never reached a call). */
export function requestIdOf(error: unknown): string {
  return (typeof error === 'object' && error !== null && requestIds.get(error)) || '';
}

function newRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const withRequestId: Interceptor = (next) => async (req) => {
  const id = newRequestId();
  req.header.set('x-request-id', id);
  try {
    return await next(req);
  } catch (error) {
    const connectError = ConnectError.from(error);
    requestIds.set(connectError, id);
    throw connectError;
  }
};

/** Where the session's token comes from and how it is renewed (session.svelte.ts). */
export interface TokenSource {
  token(): string | undefined;
  refresh(): Promise<boolean>;
}

let tokens: TokenSource = { token: () => undefined, refresh: async () => false };

export function useTokens(source: TokenSource): void {
  tokens = source;
}

const withToken: Interceptor = (next) => async (req) => {
  const sent = tokens.token();
  if (sent) req.header.set('authorization', `Bearer ${sent}`);
  try {
    return await next(req);
  } catch (error) {
    const connectError = ConnectError.from(error);
    if (!sent || connectError.code !== Code.Unauthenticated || !(await tokens.refresh())) {
      throw connectError;
    }
    req.header.set('authorization', `Bearer ${tokens.token()}`);
    return await next(req);
  }
};

const origin = typeof location === 'undefined' ? 'http://127.0.0.1' : location.origin;

/** Calls made without a session (login, refresh). */
export const anonymousTransport = createConnectTransport({
  baseUrl: origin,
  interceptors: [withRequestId]
});

/** Calls made with the session's token. */
export const transport = createConnectTransport({
  baseUrl: origin,
  interceptors: [withToken, withRequestId]
});

export function clientFor<T extends DescService>(service: T): Client<T> {
  return createClient(service, transport);
}
