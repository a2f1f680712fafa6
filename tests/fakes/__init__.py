"""Small local fakes of the platforms orderbridge talks to (WooCommerce, ...)."""
