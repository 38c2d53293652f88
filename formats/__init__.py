"""The recording format specification and sample; installed as `bee_contract.formats`."""
