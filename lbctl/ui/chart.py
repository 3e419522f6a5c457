"""The operator page's chart: change -> live latency (each apply's ``duration_s``) and
applies/rollbacks over the last hour, from the audit log, as coordinates the page
draws as inline SVG (the template escapes; here are only numbers).  Pure."""

from __future__ import annotations

from datetime import datetime

WINDOW_S = 3600
BUCKET_S = 300  # applies and rollbacks are counted per five minutes
WIDTH, HEIGHT = 600, 120  # the SVG's view box
ROLLBACKS = ("rolled-back", "rollback-failed")
POINTS = 300  # the newest applies drawn (the counts take every one)


def epoch(text: str | None) -> float | None:
    """An audit entry's ISO time as seconds since the epoch (None if it has none or a bad one)."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except (TypeError, ValueError):
        return None


def summary(audit: tuple[dict, ...], now: float) -> dict:
    """The last hour's applies (``points``: age, duration, result, x, y) and counts per bucket."""
    since = now - WINDOW_S
    points, buckets = [], [{"applies": 0, "rollbacks": 0} for _ in range(WINDOW_S // BUCKET_S)]
    for entry in audit:
        at = epoch(entry.get("time"))
        if at is None or at < since or at > now + 60 or entry.get("result") in ("refused", "unchanged"):
            continue
        rollback = entry.get("action") == "rollback" or entry.get("result") in ROLLBACKS
        bucket = buckets[min(len(buckets) - 1, int((at - since) // BUCKET_S))]
        bucket["rollbacks" if rollback else "applies"] += 1
        if isinstance(entry.get("duration_s"), (int, float)):
            points.append({"age_s": round(now - at, 1), "duration_s": float(entry["duration_s"]),
                           "result": str(entry.get("result")), "target": str(entry.get("target")),
                           "x": round(min(WIDTH, (at - since) / WINDOW_S * WIDTH), 1)})
    points = points[-POINTS:]
    top = max((p["duration_s"] for p in points), default=0.0) or 1.0
    for p in points:
        p["y"] = round(HEIGHT - p["duration_s"] / top * (HEIGHT - 10), 1)
    most = max((b["applies"] + b["rollbacks"] for b in buckets), default=0) or 1
    step = WIDTH / len(buckets)
    for i, b in enumerate(buckets):
        b["x"] = round(i * step + 2, 1)
        b["width"] = round(step - 4, 1)
        b["applies_h"] = round(b["applies"] / most * 40, 1)
        b["rollbacks_h"] = round(b["rollbacks"] / most * 40, 1)
    return {"window_s": WINDOW_S, "bucket_s": BUCKET_S, "max_duration_s": top if points else None,
            "applies": sum(b["applies"] for b in buckets), "rollbacks": sum(b["rollbacks"] for b in buckets),
            "points": points, "buckets": buckets, "width": WIDTH, "height": HEIGHT}
