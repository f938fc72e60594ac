/** Bearer-token check for the admin routes, in constant time. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { FedloraError } from '../../shared/errors.js';

function digest(s: string): Buffer {
  // Comparing fixed-length digests keeps timingSafeEqual's equal-length rule from leaking the token length.
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Middleware that admits `Authorization: Bearer <adminToken>` and answers 401 FL_ERR_UNAUTHORIZED otherwise. */
export function requireAdmin(adminToken: string): RequestHandler {
  const expected = digest(adminToken);
  return (req, _res, next) => {
    const header = req.get('authorization');
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) {
      next(new FedloraError('FL_ERR_UNAUTHORIZED', 'this route needs the admin token: send "Authorization: Bearer <token>"'));
      return;
    }
    if (!timingSafeEqual(digest(match[1]!), expected)) {
      next(new FedloraError('FL_ERR_UNAUTHORIZED', 'the admin token is wrong'));
      return;
    }
    next();
  };
}
