"""Selection rules, each counting what it keeps and why it drops: licenses, stars, code quality,
file extensions and Pile sets."""
