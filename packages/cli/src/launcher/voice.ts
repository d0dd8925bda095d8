/**
 * How the parts of a launcher speak: one JSON log line for the operator (`say`), and launcher
 * events sent to the control plane's audit log (`report`, never throws; retried on its own).
 */
export interface LauncherVoice {
  say(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void;
  report(events: Record<string, unknown>[]): void;
}
