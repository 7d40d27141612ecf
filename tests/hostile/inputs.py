"""Files that lie: weights (.safetensors, .pth, .caffemodel), images and data folders.

Each file is made by :mod:`makers` in the case's temporary folder and handed to the commands
that read that kind: a weights file to ``compile``, ``explain`` and ``weights import``; an image
to ``explain`` and ``run``; a folder to ``top-activations``, ``embed``, ``train``, ``fit`` and
``probe``. Every one must end in one line and exit 1, with no output left behind, and a pickle
that carries code must never run it (``outputs`` holds ``pwned``, the file its code would
create).
"""

from __future__ import annotations

from hostile.base import case, make
from hostile.commands import BASE, OUTPUTS

F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
SAFETENSORS = {
    "huge-header-length": make("safetensors", header={"w": F32}, length=2**63, data_bytes=8),
    "header-past-end": make("safetensors", header={"w": F32}, length=10**9, data_bytes=8),
    "offsets-past-end": make("safetensors", header={"w": {**F32, "data_offsets": [0, 10**12]}},
                             data_bytes=8),
    "elements-1e12": make("safetensors", header={"w": {**F32, "shape": [10**6, 10**6]}},
                          data_bytes=8),
    "elements-overflow": make("safetensors", header={"w": {**F32, "shape": [2**62, 4]}},
                              data_bytes=8),
    "bad-json": make("safetensors", raw_header='{"w": {"dtype": "F32", "shape": [2',
                     data_bytes=8),
    "not-an-object": make("safetensors", raw_header="[1, 2, 3]"),
    "dtype-unknown": make("safetensors", header={"w": {**F32, "dtype": "Q99"}}, data_bytes=8),
    "dtype-lie-f64": make("safetensors", header={"w": {**F32, "dtype": "F64"}}, data_bytes=8),
    "dtype-string": make("safetensors", header={"w": {**F32, "dtype": 7}}, data_bytes=8),
    "shape-negative": make("safetensors", header={"w": {**F32, "shape": [-2]}}, data_bytes=8),
    "offsets-reversed": make("safetensors", header={"w": {**F32, "data_offsets": [8, 0]}},
                             data_bytes=8),
    "empty-header": make("safetensors", raw_header="", data_bytes=0),
    "nan-weights": make("lenet5_weights", scale=float("nan")),
    "foreign-names": make("lenet5_weights", rename=True),
}
TORCH = {
    "pickle-code": make("pickle_code"),
    "pickle-code-zip": make("pickle_code", zipped=True),
    "zip-bomb": make("zip_bomb", megabytes=256),
    "truncated": make("torch_file", truncate_to=0.5),
    "truncated-header": make("torch_file", truncate_to=0.02),
    "empty": {"text": ""},
    "garbage": {"text": "\x80" + "not a pickle" * 100},
}
CAFFE = {
    "truncated": make("caffemodel", truncate_to=0.6),
    "wrong-message": {"text": 'name: "a"\nlayer { name: "c1" type: "Convolution" }\n'},
    "huge-dims": make("caffemodel", kind="huge-dims"),
    "negative-dims": make("caffemodel", kind="negative-dims"),
    "overflow-dims": make("caffemodel", kind="overflow-dims"),
    "data-past-end": make("caffemodel", kind="data-past-end"),
    "many-layers": make("caffemodel", kind="many-layers", count=50_000),
    "empty": {"text": ""},
}
WEIGHT_COMMANDS = {
    "compile": ["compile", "lenet5", "--weights", "{f}", "-o", "out.onnx"],
    "explain": [*BASE["explain"][0], "--weights", "{f}"],
    "import": ["weights", "import", "lenet5", "{f}", "-o", "out.safetensors"],
}


def weights_cases(full: bool):
    files = [(f"st-{k}", "w.safetensors", v) for k, v in SAFETENSORS.items()]
    files += [(f"pth-{k}", "w.pth", v) for k, v in TORCH.items()]
    files += [(f"caffe-{k}", "w.caffemodel", v) for k, v in CAFFE.items()]
    if full:
        files.append(("pth-zip-bomb-4g", "w.pth", make("zip_bomb", megabytes=4095)))  # zip32
        files.append(("caffe-many-layers-1m", "w.caffemodel",
                      make("caffemodel", kind="many-layers", count=1_000_000)))
    for name, filename, spec in files:
        for command, argv in WEIGHT_COMMANDS.items():
            # The costly files once (compile); every file through every command in the full run.
            slow = command != "compile" and ("bomb" in name or "many" in name)
            slow = slow or name.endswith(("-4g", "-1m"))
            yield case(f"weights-{name}-{command}", "weights", argv=[
                a.replace("{f}", filename) for a in argv],
                files={filename: spec, **BASE["explain"][1]}, located=False, codes=(1,),
                outputs=OUTPUTS, slow=slow, limit=120 if "-4g" in name else 60)


IMAGES = {
    "0x0": (make("png_header", width=0, height=0), None),
    "bomb-100k": (make("png_header", width=100_000, height=100_000), "decompression bomb"),
    "wide-1x1e6": (make("png_header", width=10**6, height=1), None),
    "truncated": (make("image", size=64, truncate_to=0.5), None),
    "garbage": ({"text": "GIF89a" + "x" * 50}, None),
    "empty": ({"text": ""}, None),
}
# Odd but real images: read and used (exit 0), or refused in one line.
ODD_IMAGES = {
    "cmyk": make("image", mode="CMYK", fmt="JPEG"),
    "16bit": make("image", mode="I;16"),
    "palette": make("image", mode="P"),
    "rgba": make("image", mode="RGBA"),
    "bilevel": make("image", mode="1"),
    "animated": make("image", mode="P", fmt="GIF", frames=3),
    "1x1": make("image", size=1),
}


def image_cases(full: bool):
    for name, (spec, fragment) in IMAGES.items():
        for command, argv in (("explain", BASE["explain"][0]), ("run", BASE["run"][0])):
            yield case(f"image-{name}-{command}", "images", argv=argv,
                       files={"img.png": spec}, located=False, codes=(1,), fragment=fragment,
                       outputs=OUTPUTS, limit=30)
    for name, spec in ODD_IMAGES.items():
        yield case(f"image-{name}-explain", "images", argv=BASE["explain"][0],
                   files={"img.png": spec}, located=False, codes=(0, 1), limit=30,
                   slow=name not in ("cmyk", "16bit", "animated"))
        yield case(f"image-{name}-run", "images", argv=BASE["run"][0], files={"img.png": spec},
                   located=False, codes=(0, 1), limit=30)


def _folder(kind: str) -> dict:
    """A data folder of ``kind`` under ``d/`` (with class folders ``a`` and ``b``)."""
    img = make("image", size=12)
    if kind == "empty":
        return {"d": {"dir": True}}
    if kind == "empty-classes":
        return {"d/a": {"dir": True}, "d/b": {"dir": True}}
    if kind == "one-image":
        return {"d/a/1.png": img}
    if kind == "one-per-class":
        return {"d/a/1.png": img, "d/b/1.png": img}
    if kind == "fifo-image":
        return {"d/a/1.png": img, "d/b/1.png": {"fifo": True}, "d/b/2.png": img}
    if kind == "dir-named-png":
        return {"d/a/1.png": img, "d/b/x.png": {"dir": True}, "d/b/2.png": img}
    if kind == "dangling-link":
        return {"d/a/1.png": img, "d/b/1.png": {"symlink": "nowhere.png"}, "d/b/2.png": img}
    if kind == "symlink-loop":
        return {"d/a/1.png": img, "d/b/2.png": img, "d/b/up": {"symlink": ".."},
                "d/a/self": {"symlink": "."}}
    if kind == "bomb-inside":
        return {"d/a/1.png": img, "d/b/1.png": make("png_header", width=100_000,
                                                    height=100_000)}
    if kind == "unreadable":  # mode 000: refused in one line, or read where root may
        return {"d/a/1.png": img, "d/b/1.png": {**img, "unreadable": True}, "d/b/2.png": img}
    if kind == "flat-fifo":  # no class folders: fit reads a flat folder its own way
        return {"d/1.png": img, "d/2.png": img, "d/3.png": {"fifo": True}}
    if kind == "flat-bomb":
        return {"d/1.png": img, "d/2.png": img, "d/3.png": make("png_header", width=100_000,
                                                                height=100_000)}
    if kind == "garbage-inside":
        return {"d/a/1.png": img, "d/b/1.png": {"text": "not an image"}}
    raise ValueError(kind)


FOLDERS = ("empty", "empty-classes", "one-image", "one-per-class", "fifo-image",
           "dir-named-png", "dangling-link", "symlink-loop", "bomb-inside", "garbage-inside",
           "unreadable", "flat-fifo", "flat-bomb")
FOLDER_COMMANDS = {
    "top-activations": ["top-activations", "lenet5", "--images", "d", "--layer", "c3",
                        "--units", "0-1", "--k", "2", "--size", "16", "-o", "out.png"],
    "embed": ["embed", "lenet5", "--images", "d", "--layer", "c3", "--tile", "8", "-o",
              "out.png"],
    "train": ["train", "lenet5", "--data", "folder:d", "--epochs", "1", "--steps-per-epoch",
              "1", "-o", "out.safetensors", "--no-progress"],
    "fit": ["fit", "eigenfaces", "--data", "folder:d", "-o", "out.safetensors"],
    "probe": ["probe", "lenet5", "--data", "folder:d", "--layers", "s2.tanh"],
}
# Folders a command may use (exit 0): the links, FIFOs and folders it skips (or refuses in one
# line), the loop it does not follow; two images are a data set, one a view's folder.
USABLE = {"symlink-loop", "dangling-link", "fifo-image", "dir-named-png", "one-per-class",
          "unreadable"}
VIEWS = ("top-activations", "embed")


def folder_cases(full: bool):
    for kind in FOLDERS:
        for command, argv in FOLDER_COMMANDS.items():
            usable = kind in USABLE or kind in ("one-image", "flat-fifo") and command in VIEWS
            codes = (0, 1) if usable else (1,)
            yield case(f"folder-{kind}-{command}", "folders", argv=argv, files=_folder(kind),
                       located=False, codes=codes, outputs=[] if 0 in codes else OUTPUTS,
                       limit=20, slow=0 in codes and command in ("embed", "train", "probe"))


CLASSES = (weights_cases, image_cases, folder_cases)
