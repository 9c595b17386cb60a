"""Reading the warehouse: keyset pages (READ ONLY), normalizing formats, what cannot be stored."""
