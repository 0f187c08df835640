"""Figures the chapters draw: one module per chapter (`course.figures.<chapter>`), mirroring
`course.checks.<chapter>`, and `course.figures.graphs`, the computation-graph drawing every
chapter can use."""
