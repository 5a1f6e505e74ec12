package main

// An optInPhase runs only when -phases names it: it is left out of the
// default selection (its run is long, or needs more than the others).
type optInPhase interface {
	phase
	optIn()
}

// defaultPhases are the phases of the default -phases: every phase but
// the opt-in ones, in table order.
func defaultPhases(ps []phase) []phase {
	var out []phase
	for _, p := range ps {
		if _, opt := p.(optInPhase); !opt {
			out = append(out, p)
		}
	}
	return out
}
