// Every test process runs with synchronous tensor reads refused (client/backends/sync-reads.ts):
// tests read tensors with `await t.data()`, as client code must.
import { forbidSyncReadsIfAsked } from '../../client/backends/sync-reads.js';

forbidSyncReadsIfAsked();
