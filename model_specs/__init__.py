"""The zoo: one ``.net`` file per family, and where each net comes from.

``SOURCES`` gives ``netc zoo``'s source column: the paper (authors and year, the section or
table where it helps) and, where the spec reproduces a library's build rather than the paper's
text, that library. One entry per net, spelled out: a pattern such as ``mobilenet*`` once
gave MobileNet v2 and v3 the v1 paper. tests/test_zoo.py checks that every zoo net has an
entry and every entry names a zoo net (a net without one would show the first comment line of
its file).
"""

_HE_2015 = "He et al. 2015, Table 1"
_CIFAR = "He et al. 2015, §4.2"
_VGG = "Simonyan & Zisserman 2014"
_VGG_BN = "torchvision (Simonyan & Zisserman + bn)"
_V1_5 = "torchvision (He et al. 2015, v1.5)"
_DENSENET = "Huang et al. 2017 (torchvision)"
_EFFICIENT = "Tan & Le 2019 (torchvision)"
_V3 = "Howard et al. 2019 (torchvision)"
_PREACT = "He et al. 2016, Identity Mappings"
_SHUFFLE = "Ma et al. 2018 (torchvision)"
_SQUEEZE = "Iandola et al. 2016 (torchvision)"
_WRN = "Zagoruyko & Komodakis 2016"

SOURCES: dict[str, str] = {
    "alexnet": "Krizhevsky et al. 2012 (Caffe)",
    "alexnet_tv": "torchvision (Krizhevsky 2014)",
    "allcnn_c": "Springenberg et al. 2014",
    **{f"cifar_resnet{n}": _CIFAR for n in ("", "20", "32", "44", "56", "110", "1202")},
    "cifar_resnet110_sd": "Huang et al. 2016 (stochastic depth)",
    "cifar_resnet1202_sd": "Huang et al. 2016 (stochastic depth)",
    **{n: "Liu et al. 2022 (torchvision)" for n in ("convnext", "convnext_tiny")},
    "densenet": _DENSENET,
    "densenet121": _DENSENET,
    "densenet169": _DENSENET,
    "efficientnet": _EFFICIENT,
    "efficientnet_b0": _EFFICIENT,
    **dict.fromkeys(("efficientnet_v2", "efficientnet_v2_s"), "Tan & Le 2021 (torchvision)"),
    "eigenfaces": "Turk & Pentland 1991",
    "fractalnet": "Larsson et al. 2016",
    "googlenet": "Szegedy et al. 2014 (Caffe)",
    "googlenet_tv": "torchvision (Szegedy et al. 2014 + bn)",
    "inception_v3": "Szegedy et al. 2016 (torchvision)",
    "lenet5": "LeCun et al. 1998",
    "mobilenet_v1": "Howard et al. 2017",
    "mobilenet_v2": "Sandler et al. 2018 (torchvision)",
    "mobilenet_v3": _V3,
    "mobilenet_v3_large": _V3,
    "mobilenet_v3_small": _V3,
    "plain34": "He et al. 2015, Table 1 (plain)",
    "preact_resnet": _PREACT,
    "preact_resnet164": _PREACT,
    "preact_resnet1001": _PREACT,
    **{f"resnet{n}": _HE_2015 for n in ("", "18", "34", "50", "101", "152")},
    **{f"resnet{n}_v1_5": _V1_5 for n in ("50", "101", "152")},
    **dict.fromkeys(("regnet_y", "regnet_y_400mf"), "Radosavovic et al. 2020 (torchvision)"),
    "resnext50_32x4d": "Xie et al. 2017 (torchvision)",
    "shufflenet_v2": _SHUFFLE,
    "shufflenet_v2_x1_0": _SHUFFLE,
    "squeezenet": _SQUEEZE,
    "squeezenet1_0": _SQUEEZE,
    "squeezenet1_1": "Iandola et al. (v1.1, torchvision)",
    "unet": "Ronneberger et al. 2015",
    **{f"vgg{n}": _VGG for n in ("", "11", "11_lrn", "13", "16", "16c", "19")},
    **{f"vgg{n}_bn": _VGG_BN for n in ("11", "13", "16", "19")},
    **dict.fromkeys(("vit", "vit_b_16"), "Dosovitskiy et al. 2020 (torchvision)"),
    "wide_resnet50_2": _WRN + " (torchvision)",
    "wrn": _WRN,
    "wrn28_10": _WRN,
}
