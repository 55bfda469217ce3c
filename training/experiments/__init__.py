"""The experiments the FLAN and CodeGen recipes exist for, as runnable drivers (see README)."""
