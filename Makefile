# Thin wrappers around ./dev, for those who type make.
.PHONY: demo test setup reference-model bench

demo test setup reference-model bench:
	./dev $@
