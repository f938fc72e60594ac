"""Independent reference for the SVD-based parts of aggregation/ (numpy's LAPACK SVD).

stdin JSON: {"rows": m, "cols": n, "data": [row-major values], "rank": k}
stdout JSON: {"singular": [all singular values, descending],
              "best": [row-major best rank-k approximation U_k S_k V_k^T],
              "relative_error": ||M - best||_F / ||M||_F}
"""
import json
import sys

import numpy as np

req = json.load(sys.stdin)
M = np.array(req["data"], dtype=np.float64).reshape(req["rows"], req["cols"])
U, S, Vt = np.linalg.svd(M, full_matrices=False)
k = req["rank"]
best = (U[:, :k] * S[:k]) @ Vt[:k, :]
norm = np.linalg.norm(M)
err = float(np.linalg.norm(M - best) / norm) if norm > 0 else 0.0
print(json.dumps({"singular": S.tolist(), "best": best.ravel().tolist(), "relative_error": err}))
