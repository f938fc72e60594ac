/** Errors as HTTP responses: `{"error": {"code", "message", "field"?}}` with a status per code. */
import type { ErrorRequestHandler, Response } from 'express';
import { ERROR_CODES, FedloraError, type ErrorCode } from '../../shared/errors.js';
import type { ErrorBody } from '../../shared/protocol/http.js';
import type { Logger } from '../logger.js';

/** HTTP status of each code the API can answer with; any other code is a 500. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  FL_ERR_INVALID_ARGUMENT: 400,
  FL_ERR_INVALID_CONFIG: 400,
  FL_ERR_UNKNOWN_STRATEGY: 400,
  FL_ERR_PRIVACY_ARGUMENT: 400,
  FL_ERR_UNAUTHORIZED: 401,
  FL_ERR_ENROLMENT: 403,
  FL_ERR_NOT_FOUND: 404,
  FL_ERR_ROUND_STATE: 409,
  FL_ERR_BODY_TOO_LARGE: 413,
  FL_ERR_RATE_LIMITED: 429,
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

export function errorBody(code: ErrorCode, message: string, field?: string): ErrorBody {
  return { error: { code, message, ...(field !== undefined && { field }) } };
}

export function sendError(res: Response, error: FedloraError): void {
  const field = typeof error.details.field === 'string' ? error.details.field : undefined;
  // The reason (the message without its "CODE: " prefix): the code travels in its own field.
  res.status(statusOf(error.code)).json(errorBody(error.code, error.reason, field));
}

/** body-parser's errors carry a `type`; map the ones a client can cause to our codes. */
function fromBodyParser(e: { type?: string; limit?: number; length?: number; message?: string }): FedloraError | undefined {
  switch (e.type) {
    case 'entity.too.large':
      return new FedloraError('FL_ERR_BODY_TOO_LARGE', `request body of ${e.length ?? '?'} bytes is over the ${e.limit ?? '?'}-byte limit`);
    case 'entity.parse.failed':
      return new FedloraError('FL_ERR_INVALID_ARGUMENT', `request body is not valid JSON: ${e.message ?? ''}`.trim(), {}, { cause: e });
    case 'encoding.unsupported':
    case 'charset.unsupported':
    case 'request.aborted':
    case 'request.size.invalid':
      return new FedloraError('FL_ERR_INVALID_ARGUMENT', `request body could not be read: ${e.message ?? e.type}`, {}, { cause: e });
    default:
      return undefined;
  }
}

/** The last middleware: every error becomes a coded JSON answer; unexpected ones are logged. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let error: FedloraError;
    if (err instanceof FedloraError && err.code in ERROR_CODES) {
      error = err;
    } else {
      const mapped = typeof err === 'object' && err !== null ? fromBodyParser(err as Record<string, never>) : undefined;
      if (mapped !== undefined) {
        error = mapped;
      } else {
        logger.error({ err, method: req.method, url: req.originalUrl }, 'unexpected error in an HTTP handler');
        error = new FedloraError('FL_ERR_INTERNAL', 'unexpected error; see the coordinator log');
      }
    }
    if (statusOf(error.code) >= 500 && !(err instanceof FedloraError && err.code === 'FL_ERR_INTERNAL')) {
      logger.error({ code: error.code, message: error.message, url: req.originalUrl }, 'HTTP request failed');
    }
    sendError(res, error);
  };
}
