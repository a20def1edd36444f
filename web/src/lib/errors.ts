// What a page shows for a failed call: a sentence for its code, the service's own message, the
// request id, and the field errors (google.rpc.BadRequest) by field path, e.g.
// "product[0].discount[1].value".
import { Code, ConnectError } from '@connectrpc/connect';
import { BadRequestSchema } from '$gen/google/rpc/error_details_pb';
import { requestIdOf } from './api';

export interface UiError {
  code: string;
  title: string;
  message: string;
  requestId: string;
  fields: Record<string, string[]>;
}

const TITLES: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]: 'Some fields need attention',
  [Code.NotFound]: 'Not found',
  [Code.AlreadyExists]: 'It exists already',
  [Code.FailedPrecondition]: 'Not possible in its current state',
  [Code.PermissionDenied]: 'Not allowed: your role may not do this',
  [Code.Unauthenticated]: 'Please sign in again',
  [Code.ResourceExhausted]: 'Too many attempts; wait a moment',
  [Code.Unavailable]: 'The service is not reachable right now',
  [Code.DeadlineExceeded]: 'The service took too long to answer'
};

export function toUiError(error: unknown): UiError {
  const connectError = ConnectError.from(error);
  const fields: Record<string, string[]> = {};
  for (const detail of connectError.findDetails(BadRequestSchema)) {
    for (const violation of detail.fieldViolations) {
      (fields[violation.field] ??= []).push(violation.description);
    }
  }
  return {
    code: Code[connectError.code] ?? String(connectError.code),
    title: TITLES[connectError.code] ?? 'Something went wrong',
    message: connectError.rawMessage,
    requestId: requestIdOf(connectError) || requestIdOf(error),
    fields
  };
}
