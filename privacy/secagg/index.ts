/** The public surface of secure aggregation (docs/secure-aggregation.md). */
export { secAggConfig, type SecAggConfig, type SecAggSettings } from './config.js';
export { SecAggClient, type SecAggAuth } from './client.js';
export { advertiseDigest, viewDigest, rosterTrust, type PeerTrust, type SecAggIdentity } from './identity.js';
export { pinnedPeerTrust, signKeyFingerprint } from './peer-pins.js';
export { SecAggServer, type SecAggResult, type BadShare } from './server.js';
export { runInProcess, inProcessParties, type DropoutSchedule, type Adversary, type InProcessRound } from './in-process.js';
export type * from './messages.js';
export * from './wire.js';
export { quantise, dequantiseSum, quantisationErrorBound, maxSummands, DEFAULT_CLIP_RANGE, DEFAULT_QUANT_RANGE, type QuantisationParams } from './quantize.js';
export { neighbourhood, defaultDegree, defaultThreshold } from './neighbourhood.js';
export { splitSecret, reconstructSecret, type Share } from './shamir.js';
export { noiseShareStd, addNoiseShare, effectiveNoiseMultiplier, secureRoundMechanism } from './distributed-noise.js';
