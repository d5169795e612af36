import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * The library never prints to stdout on its own: its logger writes JSON to stderr, and a
 * host agent can pass its own pino logger instead.
 */
export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
  return pino({ name: 'stratoswarm-runtime', level }, destination ?? pino.destination(2));
}

export function containerLogger(parent: Logger, id: string, name: string): Logger {
  return parent.child({ container: id, name });
}
