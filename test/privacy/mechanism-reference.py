"""Independent reference for what a round really releases (issue 11), with mpmath / itertools.

Reads a JSON request on stdin, writes JSON on stdout. Sections (each optional):
  * epsilon: [{events: [{q, sigma, steps}], delta, orders}] -> [{epsilon, order}]
    RDP of each event by accountant-reference.py (exact binomial sum at integer orders, quadrature
    of the defining integral at fractional ones), composed by adding per order, converted with
    Balle et al. 2020 Thm. 21.
  * gaussians: [{releases: [{sensitivity, std}]}] -> [z]
    The single noise multiplier equivalent to releasing several Gaussian mechanisms at once: RDP
    of N(0, std^2) with sensitivity s is alpha s^2 / (2 std^2); they add, so
    z = (sum s^2 / std^2)^(-1/2).
  * honest: [{n, h, s}] -> [fraction]
    Distributed DP: n sampled clients, at least h honest (the protected client, index 0, among
    them), the first s in the sum. Enumerates every set of dishonest clients and returns the least
    number of honest OTHER clients in the sum, over h (so z_eff = z sqrt(fraction)).
"""
import importlib.util
import itertools
import json
import os
import sys

import mpmath as mp

mp.mp.dps = 25

_spec = importlib.util.spec_from_file_location('accountant_reference', os.path.join(os.path.dirname(__file__), 'accountant-reference.py'))
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def epsilon(case):
    best, best_order = mp.inf, None
    for a in case['orders']:
        r = sum(e['steps'] * ref.rdp(e['q'], e['sigma'], a) for e in case['events'])
        e = ref.epsilon_at(a, r, case['delta'], 'improved')
        if e < best:
            best, best_order = e, a
    return {'epsilon': float(max(best, 0)), 'order': best_order}


def gaussians(case):
    total = mp.fsum(mp.mpf(r['sensitivity']) ** 2 / mp.mpf(r['std']) ** 2 for r in case['releases'])
    return float(1 / mp.sqrt(total))


def honest(case):
    n, h, s = case['n'], case['h'], case['s']
    worst = None
    others = range(1, n)
    for d in range(0, n - h + 1):
        for dishonest in itertools.combinations(others, d):
            bad = set(dishonest)
            honest_others = sum(1 for i in range(1, s) if i not in bad)
            worst = honest_others if worst is None else min(worst, honest_others)
    return worst / h


def main():
    request = json.load(sys.stdin)
    out = {
        'epsilon': [epsilon(c) for c in request.get('epsilon', [])],
        'gaussians': [gaussians(c) for c in request.get('gaussians', [])],
        'honest': [honest(c) for c in request.get('honest', [])],
    }
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
