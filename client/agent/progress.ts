/**
 * What the agent tells its user while it runs: one progress bar per round (cli-progress) and a
 * line per event, or nothing but the lines (quiet mode, for tests, simulations and logs that are
 * not a terminal).
 */
import type { TrainProgress } from '../train/trainer.js';
import type { RoundResult } from '../../shared/protocol/events.js';

export interface AgentProgress {
  /** A line of information (connection, enrolment, round results). */
  info(line: string): void;
  /** A round's local training starts. */
  roundStart(round: number, attempt: number, totalSteps: number): void;
  /** After each optimizer step. */
  step(p: TrainProgress): void;
  /** The round's training ended (trained, aborted or failed). */
  roundEnd(): void;
  /** Stops every bar (the agent is exiting). */
  stop(): void;
  /** A round was committed (the coordinator's round_result, as received). @default ignored */
  roundResult?(result: RoundResult): void;
}

/** Lines only (to a callback; nothing when none is given). */
export function quietProgress(log: (line: string) => void = () => undefined): AgentProgress {
  return { info: log, roundStart: () => undefined, step: () => undefined, roundEnd: () => undefined, stop: () => undefined };
}

/**
 * A cli-progress bar per round on `stream` (stderr by default), lines printed above it.
 * @param stream where to draw; cli-progress draws nothing on a stream that is not a TTY unless `noTTYOutput`
 */
export async function barProgress(stream: NodeJS.WriteStream = process.stderr): Promise<AgentProgress> {
  const { SingleBar, Presets } = await import('cli-progress');
  let bar: InstanceType<typeof SingleBar> | null = null;
  const stopBar = (): void => {
    bar?.stop();
    bar = null;
  };
  return {
    info(line) {
      if (bar !== null) bar.stop();
      stream.write(`${line}\n`);
      bar = null;
    },
    roundStart(round, attempt, totalSteps) {
      stopBar();
      bar = new SingleBar(
        {
          stream,
          format: `round ${round}${attempt > 0 ? ` (try ${attempt + 1})` : ''} [{bar}] {value}/{total} steps | loss {loss} | {rate} ex/s | eta {eta_formatted}`,
          hideCursor: true,
          clearOnComplete: false,
        },
        Presets.shades_classic,
      );
      bar.start(totalSteps, 0, { loss: '-', rate: '-' });
    },
    step(p) {
      bar?.update(p.step, { loss: Number.isFinite(p.loss) ? p.loss.toFixed(4) : '-', rate: p.examplesPerSecond.toFixed(0) });
    },
    roundEnd: stopBar,
    stop: stopBar,
  };
}
