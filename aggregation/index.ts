/**
 * The public surface of aggregation/ for the coordinator and simulations: the Strategy interface
 * and its types, the registry, the DP wrapper, and the strategy-specific tools (FLoRA compression,
 * Fed-SB's gradient initialisation, FFA's frozen A, the exactness check).
 */
export type {
  AggregationNoise,
  AggregationReport,
  ClientInfo,
  ClientPlan,
  ClientUpdate,
  FactorName,
  GlobalState,
  JobSpec,
  RoundAggregation,
  RoundResult,
  Strategy,
  StrategyName,
  SummedDelta,
  TrainableVector,
} from './strategy.js';
export { createStrategy, isStrategyName, STRATEGY_NAMES, type StrategyOptions } from './registry.js';
export type { FedAvgOptions } from './fedavg.js';
export { compressFloraAdapter, concatenateAdapters, type CompressedAdapter } from './flora.js';
export { ffaFrozenA, FFA_A_DOMAIN } from './ffa.js';
export { fedsbInitFromGradient, fedsbRandomInit, type FedSbGradientInit } from './fedsb.js';
export { DpFedAvgStrategy, updateNoiseMultiplier, type DpFedAvgOptions, type DpAggregationReport, type DpRoundReport, type AdaptiveClippingOptions } from './dp-fedavg.js';
export { productGap, type ProductGap } from './exactness.js';
export { sha256OfFloat32 } from './frozen-hash.js';
