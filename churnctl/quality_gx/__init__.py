"""Great Expectations: the suites churnctl generates, its GX project and the gate."""
