/** What the agent reports when it exits: the job's outcome and this client's part in it. */

/** A round's update that went wrong: refused by the coordinator, or never made (training failed). */
export interface RefusedUpdate {
  readonly round: number;
  readonly attempt: number;
  readonly code: string;
  readonly message: string;
}

export interface AgentSummary {
  readonly jobId: string;
  /** Empty when the client never got past enrolment. */
  readonly clientId: string;
  /**
   * `completed` / `failed`: the job's end as the coordinator announced it; `ended`: the job had
   * already ended when the client connected (the coordinator refuses the hello).
   */
  readonly status: 'completed' | 'failed' | 'ended';
  readonly reason?: string;
  /** Rounds the job committed. */
  readonly jobRounds: number;
  /** Rounds this client trained (including ones whose update came too late). */
  readonly roundsTrained: number;
  /** Updates the coordinator acknowledged as accepted. */
  readonly updatesAccepted: number;
  readonly updatesRefused: readonly RefusedUpdate[];
  /** Rounds whose training failed (no update sent), with the error: the agent went on. */
  readonly roundsFailed: readonly RefusedUpdate[];
  /** Rounds whose training was stopped (round closed, superseded after a coordinator restart). */
  readonly roundsAborted: number;
  /** Connections after the first one. */
  readonly reconnects: number;
  /** The last round_result's metrics (aggregated over the round's clients). */
  readonly lastRoundMetrics?: Readonly<Record<string, number>>;
  /** Client-side DP: epsilon this client spent over the rounds it trained (with Fed-SB's noised init release, when it made one), at delta. */
  readonly clientEpsilon?: { readonly epsilon: number; readonly delta: number; readonly steps: number; readonly noiseMultiplier: number; readonly samplingRate: number; readonly initReleaseNoiseMultiplier?: number };
  readonly seconds: number;
}

/** The summary as lines for a terminal. */
export function formatSummary(s: AgentSummary): string {
  const lines = [
    `job ${s.jobId}: ${s.status}${s.reason === undefined ? '' : ` (${s.reason})`}; ${s.jobRounds} rounds committed`,
    `client ${s.clientId || '(not enrolled)'}: trained ${s.roundsTrained} rounds, ${s.updatesAccepted} updates accepted, ${s.updatesRefused.length} refused, ${s.roundsAborted} aborted, ${s.reconnects} reconnects, ${s.seconds.toFixed(1)} s`,
  ];
  for (const r of s.updatesRefused) lines.push(`  round ${r.round} (attempt ${r.attempt}) refused: ${r.code}: ${r.message}`);
  for (const r of s.roundsFailed) lines.push(`  round ${r.round} (attempt ${r.attempt}) training failed: ${r.code}: ${r.message}`);
  if (s.lastRoundMetrics !== undefined) {
    lines.push(`last round: ${Object.entries(s.lastRoundMetrics).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ')}`);
  }
  if (s.clientEpsilon !== undefined) lines.push(`client DP: epsilon ${s.clientEpsilon.epsilon.toFixed(3)} at delta ${s.clientEpsilon.delta} over ${s.clientEpsilon.steps} DP-SGD steps (sigma ${s.clientEpsilon.noiseMultiplier.toFixed(4)}, q ${s.clientEpsilon.samplingRate.toFixed(4)})`);
  return lines.join('\n');
}
