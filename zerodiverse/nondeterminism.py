"""Statistics of repeated gradients in ulps: how a nondeterministic backward differs from itself.

Input: one weight gradient computed R times from the same state, as float32 (R, ..., C) with output
channels last (the Flax layout). In ConstNet's symmetric state every output channel receives, in exact
arithmetic, the same gradient, so any difference between channels of one run, or between runs, is
rounding: these functions count it in ulps (steps of the float32 bit pattern; +0 and -0 are 0 ulps
apart) and ask whether the channels of one output tile move together.
"""

import numpy as np

ULP_BUCKETS = (0, 1, 2, 4, 8, 16, 64)  # upper bounds of the histogram's buckets; the last one is open


def ordered(x: np.ndarray) -> np.ndarray:
  """float32 -> int64 whose difference is the distance in ulps (monotonic in the float's value)."""
  bits = np.ascontiguousarray(x, np.float32).view(np.int32).astype(np.int64)
  return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.abs(ordered(a) - ordered(b))


def channel_rows(grad: np.ndarray) -> np.ndarray:
  """(..., C) -> (C, K): one row per output channel."""
  return np.moveaxis(np.asarray(grad, np.float32), -1, 0).reshape(grad.shape[-1], -1)


def distinct_rows(rows: np.ndarray) -> np.ndarray:
  """An id per row, equal for bitwise-equal rows (+0 and -0 differ, as bit patterns do)."""
  return np.unique(np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), -1), axis=0,
                   return_inverse=True)[1].reshape(-1)


def histogram(distances: np.ndarray) -> dict:
  """Fraction of elements per ulp bucket: '0', '1', '2', '3-4', ..., '>64'."""
  out, low = {}, 0
  for high in ULP_BUCKETS:
    label = str(high) if high == low else f"{low}-{high}"
    out[label] = float(np.mean((distances >= low) & (distances <= high)))
    low = high + 1
  out[f">{ULP_BUCKETS[-1]}"] = float(np.mean(distances > ULP_BUCKETS[-1]))
  return out


def tile_agreement(ids: np.ndarray, moved: np.ndarray, tile: int) -> dict:
  """Among channel pairs where at least one moved: the fraction with identical moves, same tile vs not.

  `ids` (C,) labels each channel's change (equal id = bitwise-equal change), `moved` (C,) whether it
  changed at all. If channels of one tile are computed together, `within` is much above `across`.
  """
  channels = np.arange(len(ids))
  same_tile = (channels[:, None] // tile) == (channels[None, :] // tile)
  pairs = np.triu(moved[:, None] | moved[None, :], 1)
  agree = ids[:, None] == ids[None, :]
  within, across = pairs & same_tile, pairs & ~same_tile
  fraction = lambda mask: float(agree[mask].mean()) if mask.any() else None
  return {"tile": tile, "within": fraction(within), "across": fraction(across),
          "pairs_within": int(within.sum()), "pairs_across": int(across.sum())}


def layer_stats(grads: np.ndarray, tiles=(8, 16, 32, 64)) -> dict:
  """Everything measured for one layer from its R repeated gradients (R, ..., C)."""
  grads = np.asarray(grads, np.float32)
  runs = [channel_rows(g) for g in grads]
  first = runs[0]
  channels = first.shape[0]
  # Within one run: how many channels are bitwise distinct, and how far apart (ulps from channel 0).
  distinct = [int(distinct_rows(r).max()) + 1 for r in runs]
  spread = np.stack([ulp_distance(r, r[:1]).max(0) for r in runs])  # (R, K): worst channel per element
  # Run to run: every later run against the first, element by element.
  later = np.stack(runs[1:]) if len(runs) > 1 else np.zeros((0,) + first.shape, np.float32)
  to_first = ulp_distance(later, first[None]) if len(later) else np.zeros((0,) + first.shape, np.int64)
  unchanged = (to_first == 0).all(0) if len(later) else np.ones(first.shape, bool)
  distinct_runs = int(distinct_rows(grads.reshape(len(grads), -1)).max()) + 1
  tiles_out = []
  for tile in tiles:
    if tile >= channels:
      continue
    agreements = []
    for r in range(len(later)):
      delta = ordered(later[r]) - ordered(first)  # (C, K) signed ulps
      moved = (delta != 0).any(1)
      if moved.any():
        agreements.append(tile_agreement(distinct_rows(delta), moved, tile))
    tiles_out.append(_mean_agreement(tile, agreements))
  return {
      "shape": list(grads.shape[1:]), "repeats": len(grads), "channels": channels,
      "distinct_channels": {"min": min(distinct), "max": max(distinct)},
      "channel_spread_ulps": {"median": float(np.median(spread)), "max": int(spread.max())},
      "distinct_runs": distinct_runs,
      "run_to_run_ulps": histogram(to_first) if len(later) else None,
      "run_to_run_max_ulps": int(to_first.max()) if to_first.size else 0,
      "fraction_unchanged": float(unchanged.mean()),
      "channels_unchanged": float(unchanged.all(1).mean()),
      "tiles": tiles_out,
  }


def _mean_agreement(tile: int, agreements: list) -> dict:
  """The per-run agreements of one tile size, averaged over the runs where something moved."""
  keep = lambda key: [a[key] for a in agreements if a[key] is not None]
  mean = lambda values: float(np.mean(values)) if values else None
  return {"tile": tile, "within": mean(keep("within")), "across": mean(keep("across")),
          "runs_moved": len(agreements)}
