import time, gc, collections
from examples.retail.harness.database import DatabaseTemplate
from examples.retail.harness.hashing import CanonicalHasher
tpl = DatabaseTemplate(); h = CanonicalHasher()
stats = collections.Counter(); tm = collections.Counter(); st = {}
def cb(phase, info):
    if phase == "start": st[0] = time.perf_counter()
    else: stats[info["generation"]] += 1; tm[info["generation"]] += time.perf_counter() - st[0]
with tpl.fresh() as db, db.connect() as c:
    h.sha256(c)
    gc.callbacks.append(cb)
    t = time.perf_counter()
    for i in range(50): h.sha256(c)
    print("per hash", round((time.perf_counter() - t) / 50 * 1000, 1), "ms; collections per hash", {g: round(n / 50, 2) for g, n in stats.items()}, "gc ms per hash", {g: round(v / 50 * 1000, 2) for g, v in tm.items()})
    print(len(gc.get_objects()))
