package registry

// unique rejects entries whose id or name repeats an earlier one of the
// same kind.
func (p *parser) unique(f *File) {
	type idName struct {
		id   int64
		name string
	}
	check := func(entries []idName, pos []position) {
		ids := map[int64]position{}
		names := map[string]position{}
		for i, e := range entries {
			if first, dup := ids[e.id]; dup {
				p.errorf(pos[i].id, join(pos[i].field, "id"), "duplicate id %d (first at %s, line %d)", e.id, first.field, first.id.Line)
			} else {
				ids[e.id] = pos[i]
			}
			if first, dup := names[e.name]; dup {
				p.errorf(pos[i].name, join(pos[i].field, "name"), "duplicate name %q (first at %s, line %d)", e.name, first.field, first.name.Line)
			} else {
				names[e.name] = pos[i]
			}
		}
	}
	var probes, resources, descriptions []idName
	for _, x := range f.Probes {
		probes = append(probes, idName{x.ID, x.Name})
	}
	for _, x := range f.Resources {
		resources = append(resources, idName{x.ID, x.Name})
	}
	for _, x := range f.Descriptions {
		descriptions = append(descriptions, idName{x.ID, x.Name})
	}
	check(probes, p.probePos)
	check(resources, p.resourcePos)
	check(descriptions, p.descriptionPos)

	// Two descriptions on one series name would interleave their samples
	// in one series, and the generic names belong to unknown ids.
	metrics := map[string]position{}
	names := map[string]bool{}
	for i, d := range f.Descriptions {
		pos := p.descriptionPos[i]
		if names[d.Name] {
			continue // reported as a duplicate name already
		}
		names[d.Name] = true
		if d.Metric == GenericMeasurement || d.Metric == GenericEvent {
			p.errorf(pos.metric, join(pos.field, "metric"), "metric name %q is reserved for unknown descriptions", d.Metric)
			continue
		}
		if first, dup := metrics[d.Metric]; dup {
			p.errorf(pos.metric, join(pos.field, "metric"), "metric name %q also made by %s (line %d)", d.Metric, first.field, first.metric.Line)
			continue
		}
		metrics[d.Metric] = pos
	}
}
