/** A log time as a spreadsheet reads it: local wall-clock time and its offset from UTC. */
export interface LocalTime {
  /** `2026-11-27 13:31:45`: Excel and LibreOffice take this as a date and time, not as text. */
  time: string;
  /** `+09:00`; the same instant in UTC is `time` minus this. */
  utc_offset: string;
}

/**
 * Formats times in `timeZone` (an IANA name such as `Asia/Tokyo`, or `UTC`; default: the box's
 * own zone, as the console shows them). Throws a RangeError naming the zone when it is unknown.
 */
export function localTimeFormatter(timeZone?: string): (ms: number) => LocalTime {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      timeZoneName: 'longOffset',
    });
  } catch {
    throw new RangeError(`unknown time zone "${timeZone}" (use a name like Asia/Tokyo, Europe/Berlin or UTC)`);
  }
  return (ms) => {
    const parts: Record<string, string> = {};
    for (const part of format.formatToParts(ms)) parts[part.type] = part.value;
    // `GMT+09:00`, or plain `GMT` in UTC itself.
    const offset = parts.timeZoneName!.replace(/^GMT/, '') || '+00:00';
    return { time: `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`, utc_offset: offset };
  };
}
