package server_test

import (
	"bytes"
	"fmt"
	"math"
	"time"
)

// noisySVG draws latency (log scale) over time, one colour per tenant,
// with the three phases labelled.
func noisySVG(samples []noisySample) []byte {
	const w, h, left, right, top, bottom = 1200.0, 600.0, 70.0, 170.0, 40.0, 50.0
	var end time.Duration
	for _, s := range samples {
		end = max(end, s.at+s.lat)
	}
	minL, maxL := math.Log10(0.1), math.Log10(10000.0) // 0.1 ms .. 10 s
	x := func(d time.Duration) float64 { return left + (w-left-right)*d.Seconds()/end.Seconds() }
	y := func(d time.Duration) float64 {
		ms := max(float64(d.Microseconds())/1000, 0.1)
		return top + (h-top-bottom)*(1-(math.Log10(ms)-minL)/(maxL-minL))
	}
	colours := map[string]string{"flooder": "#d62728", "victim-0": "#1f77b4", "victim-1": "#2ca02c", "victim-2": "#9467bd", "victim-3": "#ff7f0e"}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&buf, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="20" font-size="15">Bulkhead noisy-neighbour benchmark: request latency per tenant over time</text>`+"\n", left)
	for _, ms := range []float64{0.1, 1, 10, 100, 1000, 10000} {
		yy := top + (h-top-bottom)*(1-(math.Log10(ms)-minL)/(maxL-minL))
		fmt.Fprintf(&buf, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%g ms</text>`+"\n", left, w-right, yy, yy, left-5, yy+4, ms)
	}
	// Phase boundaries.
	phaseStart := map[int]time.Duration{}
	for _, s := range samples {
		if v, ok := phaseStart[s.phase]; !ok || s.at < v {
			phaseStart[s.phase] = s.at
		}
	}
	names := []string{"victims alone", "flood: rate limit + fair admission", "flood: rate limit + FIFO", "flood: no protection"}
	for p, name := range names {
		if at, ok := phaseStart[p]; ok {
			fmt.Fprintf(&buf, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#333" stroke-dasharray="4 3"/><text x="%.1f" y="%.0f">%s</text>`+"\n", x(at), x(at), top, h-bottom, x(at)+4, top+14, name)
		}
	}
	fmt.Fprintf(&buf, `<text x="%.0f" y="%.0f" text-anchor="middle">time (s), %.1f s in all; log latency axis</text>`+"\n", (left+w-right)/2, h-15, end.Seconds())
	// Points: the flooder first (behind), at most 4000 per tenant.
	order := []string{"flooder", "victim-0", "victim-1", "victim-2", "victim-3"}
	for i, t := range order {
		var pts []noisySample
		for _, s := range samples {
			if s.tenant == t {
				pts = append(pts, s)
			}
		}
		step := max(1, len(pts)/4000)
		fmt.Fprintf(&buf, `<g fill="%s" fill-opacity="0.6">`, colours[t])
		for j := 0; j < len(pts); j += step {
			fmt.Fprintf(&buf, `<circle cx="%.1f" cy="%.1f" r="1.6"/>`, x(pts[j].at), y(pts[j].lat))
		}
		buf.WriteString("</g>\n")
		fmt.Fprintf(&buf, `<circle cx="%.0f" cy="%.0f" r="5" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", w-right+15, top+20+float64(i)*20, colours[t], w-right+25, top+24+float64(i)*20, t)
	}
	buf.WriteString("</svg>\n")
	return buf.Bytes()
}
