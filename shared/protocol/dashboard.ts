/**
 * The dashboard's live feed: a socket.io namespace the coordinator's dashboard page (and any
 * monitoring tool) joins with the admin token as `auth: {token}`. It receives a `snapshot` of the
 * jobs on connection and a `job` event whenever one changes (client joins or leaves, round
 * offered, committed, retried, job ended). Payloads are the HTTP API's JobView (http.ts) plus the
 * round in progress.
 */
import { z } from 'zod';
import { JobViewSchema } from './http.js';

export const DASHBOARD_NAMESPACE = '/dashboard';

export const LiveJobSchema = JobViewSchema.extend({
  /** The round attempt in progress, when one is. */
  current: z
    .strictObject({
      round: z.int(),
      attempt: z.int(),
      selected: z.array(z.string()),
      accepted: z.int(),
      /** The secure aggregation step the attempt is at, or null for a plain round. */
      secureStep: z.enum(['advertise', 'share_keys', 'masked_input', 'consistency', 'unmask', 'done']).nullable(),
    })
    .nullable(),
  /** Refused updates of the job so far, by reason code (recorded ones). */
  refusedByReason: z.record(z.string(), z.int()),
});
export type LiveJob = z.infer<typeof LiveJobSchema>;

export const SnapshotSchema = z.strictObject({ jobs: z.array(LiveJobSchema) });
export type Snapshot = z.infer<typeof SnapshotSchema>;

export interface DashboardServerEvents {
  snapshot: (snapshot: Snapshot) => void;
  job: (job: LiveJob) => void;
}
