"""The bindings and the docs follow include/simclr.h: same functions, same
signatures, same enum values; docs/api.md regenerated from the header."""
import os
import re
import subprocess
import sys

import libsimclr as simclr
from libsimclr import _lib, enums

from conftest import ROOT

HEADER = open(os.path.join(ROOT, "include", "simclr.h")).read()


def _header_prototypes():
    body = HEADER[HEADER.index("SIMCLR_API unsigned simclr_version_number"):]
    return {s["name"]: s for s in _lib.parse_prototypes(body)}


def _norm(t):
    return re.sub(r"\s+", "", t)


def test_every_header_function_is_declared_with_the_same_signature():
    header = _header_prototypes()
    ours = {s["name"]: s for s in _lib.SIGNATURES}
    assert sorted(header) == sorted(ours), "bindings/python/libsimclr/_lib.py PROTOTYPES differ from the header"
    for name, h in header.items():
        o = ours[name]
        assert _norm(h["ret"]) == _norm(o["ret"]), name
        assert [_norm(t) for t, _ in h["params"]] == [_norm(t) for t, _ in o["params"]], name


def test_every_c_type_has_a_ctypes_mapping():
    for s in _header_prototypes().values():
        _lib.ctype_of(s["ret"])
        for t, _ in s["params"]:
            _lib.ctype_of(t)


def test_exported_symbols_are_declared():
    # Every name in the committed export list is in the header, hence bound.
    names = [l.strip() for l in open(os.path.join(ROOT, "tests", "symbols.txt"))
             if l.strip() and not l.startswith("#")]
    declared = set(_header_prototypes())
    assert set(names) <= declared
    for n in names:
        assert simclr.has(n), "%s is in tests/symbols.txt but not exported by %s" % (n, simclr.library_path)


def _header_enums():
    src = re.sub(r"/\*.*?\*/", "", HEADER, flags=re.S)
    out = {}
    for m in re.finditer(r"typedef enum (\w+)\s*\{(.*?)\}\s*\w+;", src, flags=re.S):
        out[m.group(1)] = {e.group(1): int(e.group(2))
                           for e in re.finditer(r"(SIMCLR_\w+)\s*=\s*(\d+)", m.group(2))}
    return out


def test_enums_match_the_header():
    mapping = {"simclr_status": (enums.Status, "SIMCLR_"), "simclr_log_level": (enums.LogLevel, "SIMCLR_LOG_"),
               "simclr_dtype": (enums.DType, "SIMCLR_"), "simclr_stem": (enums.Stem, "SIMCLR_STEM_"),
               "simclr_mode": (enums.Mode, "SIMCLR_"), "simclr_augment_preset": (enums.AugPreset, "SIMCLR_AUG_PRESET_"),
               "simclr_augment_param": (enums.AugParam, "SIMCLR_AUG_"), "simclr_optimizer_kind": (enums.OptKind, "SIMCLR_OPT_"),
               "simclr_optimizer_param": (enums.OptParam, "SIMCLR_OPT_"), "simclr_trainer_stat_key": (enums.Stat, "SIMCLR_STAT_"),
               "simclr_embedder_param": (enums.EmbedParam, "SIMCLR_EMBED_"),
                "simclr_bn_mode": (enums.BnMode, "SIMCLR_BN_"),
                "simclr_trainer_param": (enums.TrainerParam, "SIMCLR_TRAINER_"),
                "simclr_moco_param": (enums.MocoParam, "SIMCLR_MOCO_"),
                "simclr_context_param": (enums.CtxParam, "SIMCLR_CTX_"), "simclr_conv_algo": (enums.ConvAlgo, "SIMCLR_CONV_"),
                "simclr_vit_pool": (enums.VitPool, "SIMCLR_VIT_POOL_"),
                "simclr_vit_preset": (enums.VitPreset, "SIMCLR_VIT_"),
                "simclr_loss_param": (enums.LossParam, "SIMCLR_LOSS_"),
                "simclr_classifier_param": (enums.ClassifierParam, "SIMCLR_CLASSIFIER_"),
                "simclr_swav_param": (enums.SwavParam, "SIMCLR_SWAV_")}
    header = _header_enums()
    assert set(header) == set(mapping)
    for cname, values in header.items():
        cls, prefix = mapping[cname]
        assert {prefix + k: int(v) for k, v in cls.__members__.items()} == values, cname
    for macro, value in (("SIMCLR_PARAM_NO_DECAY", enums.PARAM_NO_DECAY),
                         ("SIMCLR_PARAM_BUFFER", enums.PARAM_BUFFER), ("SIMCLR_MAX_DIMS", enums.MAX_DIMS)):
        assert int(re.search(r"#define %s\s+(\d+)" % macro, HEADER).group(1)) == value


def test_bindings_version_matches_header():
    parts = tuple(int(re.search(r"#define SIMCLR_VERSION_%s (\d+)" % k, HEADER).group(1))
                  for k in ("MAJOR", "MINOR", "PATCH"))
    assert simclr.BINDINGS_VERSION == parts
    pyproject = open(os.path.join(ROOT, "bindings", "python", "pyproject.toml")).read()
    assert 'version = "%d.%d.%d"' % parts in pyproject


def test_api_md_is_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_api_md.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_api_md_documents_every_function():
    doc = open(os.path.join(ROOT, "docs", "api.md")).read()
    for name in _header_prototypes():
        assert "### `%s`" % name in doc
