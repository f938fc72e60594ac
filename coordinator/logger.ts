/** The coordinator's structured log (pino, JSON lines on stderr unless a destination is given). */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * @param level pino level; `silent` turns logging off. @default 'info'
 * @param destination where lines go. @default stderr
 */
export function createLogger(level = 'info', destination?: DestinationStream): Logger {
  return pino({ name: 'fedlora-coordinator', level, base: { pid: process.pid } }, destination ?? pino.destination(2));
}
