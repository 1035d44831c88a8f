"""Name validation: hostile or misparsable names are refused before any ZFS call."""
import pytest

from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.errors import InvalidName

HOSTILE = ["a;rm -rf /", "x@y@z", "../etc", "tank/../x", "tank/-o", "tank/.hidden/..", "",
           "tank//a", "tank/a b", "tank/a\nb", "/tank", "tank/", "tank/$(id)", "a" * 300,
           "tank/é", "tank/a|b", "tank/`x`"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_dataset_names_are_refused(bad):
    with pytest.raises(InvalidName):
        names.check_dataset(bad)


@pytest.mark.parametrize("good", ["tank", "tank/sr", "tank/sr/.z", "tank/a-b_c:d.e", "p/x1"])
def test_ordinary_names_pass(good):
    # a leading '.' is refused only for the first character of a component
    if "/." in good:
        with pytest.raises(InvalidName):
            names.check_dataset(good)
    else:
        assert names.check_dataset(good) == good


@pytest.mark.parametrize("bad", ["tank/a", "tank/a@", "tank/a@-x", "tank/a@b@c", "@s",
                                 "tank/a@s;x", "tank/a@../b"])
def test_bad_snapshot_names_are_refused(bad):
    with pytest.raises(InvalidName):
        names.check_snapshot(bad)


def test_within_refuses_escape_from_the_sr():
    assert names.check_within("tank/sr", "tank/sr/v1@s") == "tank/sr/v1@s"
    for escape in ["tank/sr2/v", "tank/other", "tank", "tank/s"]:
        with pytest.raises(InvalidName):
            names.check_within("tank/sr", escape)
