/**
 * An incremental server-sent-events parser (the WHATWG event-stream format): feed it decoded
 * text in chunks cut anywhere, it calls `onEvent` once per complete event. Lines end with LF,
 * CRLF or CR; `:` lines are comments; `data` lines are joined with LF; an event with no data is
 * not dispatched; `id` and `retry` are accepted and ignored (the SDK resynchronises by rev, not
 * by event id). A leading byte-order mark is skipped. Internal.
 *
 * The SDK's one SSE parser, used by both transports. It is kept instead of `eventsource-parser`
 * (which the SDK depended on too) because that one mishandles a lone CR line end at the end of a
 * chunk: it holds the event back until more text comes and then drops the next event (see
 * fetch-transport.test.ts, "lone CR"). A kill path cannot lose a stop to where a chunk was cut.
 * It is also no slower, and the SDK has one dependency fewer.
 */
export class SseParser {
  private readonly onEvent: (event: string | undefined, data: string) => void;
  /** The start of a line whose end has not arrived yet (never holds a line end). */
  private partial = '';
  private data: string | null = null;
  private event: string | undefined = undefined;
  private started = false;
  /** The previous chunk ended with CR: a LF opening the next one belongs to that line end. */
  private skipLf = false;

  constructor(onEvent: (event: string | undefined, data: string) => void) {
    this.onEvent = onEvent;
  }

  /** Parses a chunk of text; complete events are dispatched before this returns. */
  feed(chunk: string): void {
    let text = chunk;
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.skipLf && text.length > 0) {
      this.skipLf = false;
      if (text.charCodeAt(0) === 10) text = text.slice(1);
    }
    const end = text.length;
    let pos = 0;
    // CR line ends are rare on the wire: look for the next one only once the last is passed.
    let cr = text.indexOf('\r');
    while (pos < end) {
      if (cr !== -1 && cr < pos) cr = text.indexOf('\r', pos);
      let eol = text.indexOf('\n', pos);
      let next: number;
      if (cr !== -1 && (eol === -1 || cr < eol)) {
        eol = cr;
        if (cr + 1 < end) {
          next = text.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
        } else {
          next = end;
          this.skipLf = true;
        }
      } else if (eol === -1) {
        break;
      } else {
        next = eol + 1;
      }
      if (this.partial.length > 0) {
        // The line began in an earlier chunk.
        const line = this.partial + text.slice(pos, eol);
        this.partial = '';
        this.line(line, 0, line.length);
      } else {
        this.line(text, pos, eol);
      }
      pos = next;
    }
    if (pos < end) this.partial += pos === 0 ? text : text.slice(pos);
  }

  private line(text: string, start: number, end: number): void {
    if (start === end) {
      this.dispatch();
      return;
    }
    if (text.charCodeAt(start) === 58 /* : */) return; // comment
    const colon = text.indexOf(':', start);
    let field: string;
    let value: string;
    if (colon === -1 || colon >= end) {
      field = text.slice(start, end);
      value = '';
    } else {
      field = text.slice(start, colon);
      const from = colon + 1 < end && text.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1;
      value = text.slice(from, end);
    }
    switch (field) {
      case 'data':
        this.data = this.data === null ? value : `${this.data}\n${value}`;
        break;
      case 'event':
        this.event = value;
        break;
      default:
        // id, retry and unknown fields: ignored.
        break;
    }
  }

  private dispatch(): void {
    const data = this.data;
    const event = this.event;
    this.data = null;
    this.event = undefined;
    if (data === null) return;
    this.onEvent(event === '' ? undefined : event, data);
  }
}
