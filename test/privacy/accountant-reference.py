"""Independent high-precision reference for the RDP accountant (test/privacy/accountant-reference.test.ts).

Written from the papers, not from any implementation, with mpmath at 25 significant digits:
  * integer orders: A_alpha = sum_i C(alpha, i) q^i (1-q)^(alpha-i) exp((i^2 - i) / (2 sigma^2))
    (Mironov, Talwar, Zhang 2019, Sec. 3.3), summed exactly;
  * fractional orders: NOT the series the TypeScript code sums, but the defining integral
    A_alpha = int mu0(z) ((1-q) + q mu1(z)/mu0(z))^alpha dz, mu0 = N(0, sigma^2), mu1 = N(1, sigma^2),
    taken as A - 1 (a non-negative integrand) by tanh-sinh quadrature (mpmath.quad) split where
    the integrand changes shape;
  * RDP(alpha) = log(A_alpha) / (alpha - 1); q = 1 is alpha / (2 sigma^2);
  * conversion: Balle et al. 2020 Thm. 21, eps = rdp + log(1 - 1/alpha) - (log delta + log alpha)/(alpha - 1),
    with the edge rules documented in privacy/conversion.ts (orders <= 1.01 certify nothing, the KL
    shortcut delta^2 + expm1(-rdp) > 0 gives 0, clamp at 0); classic Mironov 2017 Prop. 3,
    eps = rdp + log(1/delta)/(alpha - 1).
Reads a JSON request on stdin, writes JSON results on stdout. Also self-checks the quadrature
against the exact sum at integer orders, so a quadrature failure cannot pass silently.
"""
import json
import sys

import mpmath as mp

mp.mp.dps = 25


def log_a_integer(q, sigma, alpha):
    with mp.workdps(60):  # cheap here, and keeps log A exact to 25 digits even when A - 1 ~ 1e-12
        return +_log_a_integer(q, sigma, alpha)


def _log_a_integer(q, sigma, alpha):
    q, sigma = mp.mpf(q), mp.mpf(sigma)
    # term_i = C(alpha, i) q^i (1-q)^(alpha-i) exp((i^2 - i) / (2 sigma^2)), by the exact ratio
    # term_i / term_(i-1) = (alpha - i + 1)/i * q/(1-q) * exp((i - 1)/sigma^2).
    term = (1 - q) ** alpha
    total = term
    ratio_q = q / (1 - q)
    for i in range(1, alpha + 1):
        term *= mp.mpf(alpha - i + 1) / i * ratio_q * mp.exp(mp.mpf(i - 1) / sigma**2)
        total += term
    return mp.log(total)


def log_a_quadrature(q, sigma, alpha):
    q, sigma, alpha = mp.mpf(q), mp.mpf(sigma), mp.mpf(alpha)
    two_sigma2 = 2 * sigma**2
    norm = 1 / (sigma * mp.sqrt(2 * mp.pi))

    def integrand(z):
        # mu0(z) [(1 + q (L - 1))^alpha - 1 - alpha q (L - 1)], L = mu1/mu0 = exp((2z - 1)/(2 sigma^2)).
        # Its integral is A - 1 (E_mu0[L - 1] = 0), and it is >= 0 (convexity), so the quadrature
        # gets A - 1 to full relative precision even when A - 1 is 1e-12.
        with mp.workdps(50):  # (1 + x)^alpha - 1 - alpha x cancels ~2 log10(1/x) digits
            x = q * (mp.exp((2 * z - 1) / two_sigma2) - 1)
            value = norm * mp.exp(-z * z / two_sigma2) * ((1 + x) ** alpha - 1 - alpha * x)
        return +value

    z0 = sigma**2 * mp.log(1 / q - 1) + mp.mpf(1) / 2
    # Split at 0 and +-3, +-10 sigma (mu0's bulk), z0 (where q mu1 = (1-q) mu0) and alpha (the peak
    # of the q^alpha mu1^alpha mu0^(1-alpha) part), so no panel is much wider than its feature.
    points = sorted({mp.mpf(0), z0, alpha, -3 * sigma, 3 * sigma, -10 * sigma, 10 * sigma})
    # 24 digits: the quadrature keeps ~1e-14 of A - 1, far below the 1e-10 (1e-12) the test asks.
    with mp.workdps(24):
        a_minus_1 = mp.quad(integrand, [-mp.inf, *points, mp.inf])
    return mp.log1p(a_minus_1)


_cache = {}


def rdp(q, sigma, alpha):
    key = (q, sigma, alpha)
    if key not in _cache:
        _cache[key] = _rdp(q, sigma, alpha)
    return _cache[key]


def _rdp(q, sigma, alpha):
    q, sigma = mp.mpf(q), mp.mpf(sigma)
    if q == 0:
        return mp.mpf(0)
    if q == 1:
        return mp.mpf(alpha) / (2 * sigma**2)
    if float(alpha).is_integer():
        return log_a_integer(q, sigma, int(alpha)) / (alpha - 1)
    return log_a_quadrature(q, sigma, alpha) / (mp.mpf(alpha) - 1)


def epsilon_at(alpha, r, delta, conversion):
    alpha, delta = mp.mpf(alpha), mp.mpf(delta)
    if conversion == 'classic':
        return r + mp.log(1 / delta) / (alpha - 1) if alpha > 1 else mp.inf
    if r < 0 or delta**2 + mp.expm1(-r) > 0:
        return mp.mpf(0)
    if alpha > mp.mpf('1.01'):
        return r + mp.log(1 - 1 / alpha) - (mp.log(delta) + mp.log(alpha)) / (alpha - 1)
    return mp.inf


def main():
    request = json.load(sys.stdin)
    out = {'erfc': [], 'rdp': [], 'epsilon': [], 'selfcheck': []}
    for x in request.get('erfc', []):
        out['erfc'].append(float(mp.log(mp.erfc(mp.mpf(x)))))
    for case in request.get('rdp', []):
        out['rdp'].append([float(rdp(case['q'], case['sigma'], a)) for a in case['orders']])
    for case in request.get('epsilon', []):
        best, best_order = mp.inf, None
        for a in case['orders']:
            e = epsilon_at(a, case['steps'] * rdp(case['q'], case['sigma'], a), case['delta'], case['conversion'])
            if e < best:
                best, best_order = e, a
        out['epsilon'].append({'epsilon': float(max(best, 0)), 'order': best_order})
    # The quadrature must reproduce the exact sum where both apply.
    for q, sigma, alpha in [(0.01, 1.0, 3), (0.5, 2.0, 7), (0.3, 0.8, 2), (0.001, 4.0, 20)]:
        exact = log_a_integer(q, sigma, alpha)
        quad = log_a_quadrature(q, sigma, alpha)
        out['selfcheck'].append(float(abs(quad - exact) / abs(exact)))
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
