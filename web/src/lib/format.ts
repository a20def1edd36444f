// Values as the pages show them.
import type { DescField } from '@bufbuild/protobuf';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { enumLabel, isTimestamp } from './records';

export function showDate(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toISOString().slice(0, 10) : '';
}

export function showTime(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '';
}

export function showValue(field: DescField, value: unknown): string {
  if (isTimestamp(field)) return showDate(value as Timestamp | undefined);
  if (field.fieldKind === 'enum') return enumLabel(field, value as number);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return value === undefined || value === null ? '' : String(value);
}
