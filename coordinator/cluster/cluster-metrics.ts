/**
 * Every node of the cluster in `/metrics` (coordinator/metrics.ts's registry), read from the node
 * registry (node-registry.ts) at scrape time, so whichever node Prometheus scrapes shows them all:
 *   fedlora_cluster_node_up{node,url}        1 while the node heartbeats, 0 when down or stopped
 *   fedlora_cluster_node_jobs{node,url}      jobs it drives (holds the lease of)
 *   fedlora_cluster_node_clients{node,url}   authenticated client connections it holds
 */
import { Gauge, type Registry } from 'prom-client';
import type { NodeRecord, NodeRegistry } from './node-registry.js';

/** Adds the cluster gauges to `registry`; they query the database on each scrape. */
export function registerClusterMetrics(registry: Registry, nodes: NodeRegistry): void {
  const gauge = (name: string, help: string, value: (n: NodeRecord) => number): void =>
    void new Gauge({
      name,
      help,
      labelNames: ['node', 'url'] as const,
      registers: [registry],
      // each gauge reads the table as it is serialised (prom-client collects one metric at a time)
      async collect() {
        this.reset();
        for (const n of await nodes.list()) this.set({ node: n.nodeId, url: n.url }, value(n));
      },
    });
  gauge('fedlora_cluster_node_up', 'Whether a coordinator node of the cluster heartbeats (1) or not (0)', (n) => (n.alive ? 1 : 0));
  gauge('fedlora_cluster_node_jobs', 'Jobs a coordinator node drives (holds the lease of)', (n) => (n.alive ? n.jobs.length : 0));
  gauge('fedlora_cluster_node_clients', 'Authenticated client connections a coordinator node holds', (n) => (n.alive ? n.clients : 0));
}
