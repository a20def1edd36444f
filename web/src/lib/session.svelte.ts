// The signed-in user: kept in localStorage so a reload stays signed in, shared by every tab.
// The access token (ACCESS_TOKEN_SECONDS, 15 min by default) is renewed with the refresh token
// shortly before it expires and whenever a call is refused as unauthenticated. A refresh token
// is good for one RefreshToken call (a second use revokes the login), so tabs take turns
// through a Web Lock and a tab first looks whether another one has refreshed already.
import { createClient, Code, ConnectError } from '@connectrpc/connect';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { Role, UserSrv } from '$gen/user/proto/user_pb';
import { anonymousTransport, clientFor, useTokens } from './api';

export interface Session {
  token: string;
  refreshToken: string;
  /** When the access token expires (ms since the epoch). */
  expiresAt: number;
  userId: string;
  role: 'admin' | 'member';
  email: string;
  name: string;
}

const KEY = 'gotemp.session';
/** Renew this long before the access token expires. */
const RENEW_BEFORE_MS = 60_000;

function stored(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export const auth = $state<{ session: Session | null }>({ session: stored() });

function keep(session: Session | null): void {
  auth.session = session;
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
}

const anonymous = createClient(UserSrv, anonymousTransport);

export function roleName(role: Role): 'admin' | 'member' {
  return role === Role.ADMIN ? 'admin' : 'member';
}

/** Signs in; throws the call's error (bad credentials, throttled) for the page to show. */
export async function login(email: string, password: string): Promise<void> {
  const token = await anonymous.auth({ email, pwd: password });
  const headers = { authorization: `Bearer ${token.token}` };
  const checked = await anonymous.validateToken({ token: token.token }, { headers });
  const user = await anonymous.getUserById({ id: BigInt(checked.eUid) }, { headers });
  keep({
    token: token.token,
    refreshToken: token.refreshToken,
    expiresAt: token.expiresAt ? timestampMs(token.expiresAt) : Date.now() + 300_000,
    userId: checked.eUid,
    role: roleName(checked.role),
    email: user.email,
    name: [user.firstname, user.lastname].filter(Boolean).join(' ') || user.name || user.email
  });
}

export function logout(): void {
  keep(null);
}

let refreshing: Promise<boolean> | null = null;

/** A new access token for the session; false when the login has ended (signed out). */
export function refresh(): Promise<boolean> {
  refreshing ??= withLock(renew).finally(() => (refreshing = null));
  return refreshing;
}

async function withLock(task: () => Promise<boolean>): Promise<boolean> {
  if (typeof navigator !== 'undefined' && navigator.locks) {
    return navigator.locks.request('gotemp-session-refresh', task);
  }
  return task();
}

async function renew(): Promise<boolean> {
  const latest = stored();
  if (!latest) {
    keep(null);
    return false;
  }
  if (latest.token !== auth.session?.token && latest.expiresAt - Date.now() > RENEW_BEFORE_MS) {
    keep(latest); // another tab renewed it
    return true;
  }
  try {
    const token = await anonymous.refreshToken({ refreshToken: latest.refreshToken });
    keep({
      ...latest,
      token: token.token,
      refreshToken: token.refreshToken,
      expiresAt: token.expiresAt ? timestampMs(token.expiresAt) : Date.now() + 300_000
    });
    return true;
  } catch (error) {
    const code = ConnectError.from(error).code;
    if (code === Code.Unauthenticated || code === Code.InvalidArgument) keep(null);
    return false;
  }
}

/** Renews the token when it is close to expiring; called on a timer and on focus. */
export async function renewIfDue(): Promise<void> {
  const session = auth.session;
  if (session && session.expiresAt - Date.now() < RENEW_BEFORE_MS) await refresh();
}

/** Follows sign-in, renewal and sign-out in other tabs. */
export function followOtherTabs(): () => void {
  const onStorage = (event: StorageEvent) => {
    if (event.key === KEY) auth.session = stored();
  };
  window.addEventListener('storage', onStorage);
  return () => window.removeEventListener('storage', onStorage);
}

export function canWrite(writers: readonly string[]): boolean {
  return !!auth.session && writers.includes(auth.session.role);
}

useTokens({ token: () => auth.session?.token, refresh });

export const users = clientFor(UserSrv);
