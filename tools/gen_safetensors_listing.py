"""Write an independent listing of a safetensors file for the tests: for each tensor its dtype,
shape, and the float64 sum and sum of squares of its values, decoded with NumPy (not PruneGym).

usage: python3 tools/gen_safetensors_listing.py FILE.safetensors OUT.json
"""
import json, struct, sys
import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "U8": np.uint8, "BOOL": np.bool_}

def main(path, out):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    listing = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[begin:end]
        if entry["dtype"] == "BF16":
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<"))
        values = values.astype(np.float64)
        listing[name] = {"dtype": entry["dtype"], "shape": entry["shape"],
                         "sum": float(values.sum()), "sum_of_squares": float((values ** 2).sum())}
    json.dump({"metadata": header.get("__metadata__", {}), "tensors": listing}, open(out, "w"), indent=1, sort_keys=True)

if __name__ == "__main__":
    main(*sys.argv[1:])
