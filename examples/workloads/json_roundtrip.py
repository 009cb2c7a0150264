"""Pure-Python CPU: a nested document serialised to JSON and parsed back. The json module's
C accelerator does the work, but it never releases the GIL, so this call holds it throughout.

    clab workload examples/workloads/json_roundtrip.py:roundtrip --arg 200
"""

import json


def document(items):
    return {"orders": [{"id": i, "customer": {"name": "customer %d" % i, "tags": ["a", "b", "c"]},
                        "lines": [{"sku": "sku-%d-%d" % (i, j), "quantity": j, "price": 9.99 * j}
                                  for j in range(5)]}
                       for i in range(items)]}


def roundtrip(items):
    """Serialises a document of `items` orders and parses it again; returns its length."""
    text = json.dumps(document(items))
    return len(json.loads(text)["orders"])
