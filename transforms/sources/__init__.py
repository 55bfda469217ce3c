"""What a run reads: repository lists, archives, The Pile's files, the Multi SQL and its rows."""
