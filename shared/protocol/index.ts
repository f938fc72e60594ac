/** The wire protocol of fedlora: job specs, HTTP bodies and socket.io events (docs/protocol.md). */
export * from './job-spec.js';
export * from './encoding.js';
export * from './events.js';
export * from './http.js';
export * from './auth.js';
export * from './validate.js';
export * from './dashboard.js';
