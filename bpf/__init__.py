"""BPF C compiled by bcc at run time; installed as the package data of `bee_record.bpf`."""
