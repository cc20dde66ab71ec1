"""The shared reader of 2/3-column text tables (certificates, factory correction files)."""

import numpy as np
import pytest

from analysis.column_text import read_xy_table
from analysis.spectral_correction import SpectralResponse
from analysis.standard_lamp import LampCertificate


def test_header_keys_rows_commas_and_padding():
    header, table = read_xy_table("# ID: lamp-7\n# a comment\n\n800, 1.0, 2.0\n900 1.5\n",
                                  where="t", columns="x y [s]")
    assert header == {"id": "lamp-7"}
    np.testing.assert_array_equal(table, [[800.0, 1.0, 2.0], [900.0, 1.5, 0.0]])


@pytest.mark.parametrize("text, match", [
    ("800 1\n900 1 2 3\n", r"cert line 2: '900 1 2 3'; allowed: 'x y \[s\]' \(2 or 3 numbers\)"),
    ("800 1\nnine 1\n", r"cert line 2: 'nine 1'"),
    ("# only\n800 1\n", r"cert has 1 data rows; allowed: at least 2"),
])
def test_bad_rows_are_named(text, match):
    with pytest.raises(ValueError, match=match):
        read_xy_table(text, where="cert", columns="x y [s]")


def test_certificate_and_factory_file_read_the_same_rows(tmp_path):
    text = "# id: c1\n900 2.0 1.5\n1000,3.0,1.5\n"
    cert = LampCertificate.parse(text)
    path = tmp_path / "factory.csv"
    path.write_text(text)
    resp = SpectralResponse.from_file(path)
    np.testing.assert_array_equal(cert.wavelength_nm, resp.wavelength_nm)
    assert cert.id == "c1"
    with pytest.raises(ValueError, match=r"factory.csv has 1 data rows"):
        path.write_text("900 1\n")
        SpectralResponse.from_file(path)
