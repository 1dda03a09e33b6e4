"""The Milvus index a collection gets on export matches the kind of its saved index."""

from search_by_image.index.choice import FLAT
from search_by_image.index.milvus_index import collection_name, index_params


def test_an_exact_saved_index_stays_an_exact_scan_at_any_size():
    for count in (500, 100_000, 2_000_000):
        assert index_params(FLAT, count)[0]["index_type"] == "FLAT"


def test_ivf_keeps_its_lists_and_codes():
    assert index_params("IVF4096,Flat", 1_000_000)[0] == {"index_type": "IVF_FLAT", "params": {"nlist": 4096}}
    assert index_params("IVF16384,SQ8", 10**8)[0] == {"index_type": "IVF_SQ8", "params": {"nlist": 16384}}


def test_collection_names_are_milvus_identifiers():
    assert collection_name("holiday photos-2") == "sbi_holiday_photos_2"
