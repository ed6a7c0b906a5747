"""Every number in a profile has a physical range, declared once (hardware_profiles/schema.py), and a profile
holding a number outside it is refused in one line that names the field and the range."""

import json
from pathlib import Path

import pytest

from nasq.errors import NasqError
from nasq.hardware_profiles.profile import Profile
from nasq.hardware_profiles.schema import rule

SHIPPED = Path(__file__).resolve().parent.parent / "hardware_profiles"
PROFILES = sorted(SHIPPED.glob("*.json")) + sorted(SHIPPED.glob("published/*.json"))[:4]


def numeric_leaves(node, path="", keys=()):
    """(rule path, keys to it, value) of every number in ``node``: the first 3 items of a list of objects, the
    first number of a list of numbers."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from numeric_leaves(v, f"{path}.{k}" if path else k, (*keys, k))
    elif isinstance(node, list):
        seen_number = False
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)) and i < 3:
                yield from numeric_leaves(v, path + "[]", (*keys, i))
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and not seen_number:
                seen_number = True
                yield path + "[]", (*keys, i), v
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, keys, node


def trimmed(node):
    """``node`` with every list of objects cut to its first 3 items: the same fields, a fraction of the size."""
    if isinstance(node, dict):
        return {k: trimmed(v) for k, v in node.items()}
    if isinstance(node, list) and any(isinstance(v, (dict, list)) for v in node):
        return [trimmed(v) for v in node[:3]]
    return node


def _parent(data, keys):
    for key in keys[:-1]:
        data = data[key]
    return data


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_number_a_shipped_profile_holds_has_a_declared_range(path):
    data = json.loads(path.read_text())
    unnamed = sorted({p for p, _, _ in numeric_leaves(data) if rule(p) is None})
    assert not unnamed, f"declare these in hardware_profiles/schema.py: {unnamed}"
    Profile.from_dict(data, str(path))


@pytest.mark.parametrize(
    "path",
    [
        SHIPPED / "epyc-zen5-avx512-ort.json",
        SHIPPED / "bitserial-sim.json",
        SHIPPED / "published" / "nb201-raspi4.json",
    ],
    ids=lambda p: p.name,
)
def test_a_number_outside_its_range_is_refused_naming_field_and_range(path):
    data = trimmed(json.loads(path.read_text()))
    Profile.from_dict(data, "p.json")
    leaves = {p: keys for p, keys, _ in numeric_leaves(data)}
    assert len(leaves) > 5
    for rule_path, keys in leaves.items():
        bound = rule(rule_path)
        bad_values = [float("nan"), float("inf"), bound.high * 10 + 1]
        if bound.low > -1e6:
            bad_values.append(bound.low - 1)
        if bound.integer:
            bad_values.append(bound.low + 0.5)
        parent = _parent(data, keys)
        good = parent[keys[-1]]
        for bad in bad_values:
            parent[keys[-1]] = bad
            with pytest.raises(NasqError) as err:
                Profile.from_dict(data, "p.json")
            message = str(err.value)
            assert "\n" not in message and message.startswith("profile p.json: "), message
            assert "allowed" in message or "must be" in message, message
        parent[keys[-1]] = good
    Profile.from_dict(data, "p.json")


def test_the_message_names_the_field_its_index_and_the_range():
    data = json.loads((SHIPPED / "epyc-zen5-avx512-ort.json").read_text())
    data["kernel_calibration"]["batches"][0]["measured_ms"][3] = 1e9
    with pytest.raises(
        NasqError,
        match=r"kernel_calibration\.batches\[0\]\.measured_ms\[3\] = 1000000000\.0 is out "
        r"of range; allowed: 0 to 3\.6e\+06",
    ):
        Profile.from_dict(data, "p.json")
    data = json.loads((SHIPPED / "epyc-zen5-avx512-ort.json").read_text())
    data["layers"][7]["cin"] = 2.5
    with pytest.raises(NasqError, match=r"layers\[7\]\.cin must be a whole number, got 2\.5"):
        Profile.from_dict(data, "p.json")
