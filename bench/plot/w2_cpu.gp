# W2: server CPU time per delivered event, one cluster of bars per publish rate, one bar per peer:
# the median bar, with the rounds' min and max. collect.py writes the bars' positions into
# w2_cpu.dat (x rate peer median min max) and the clusters' names into w2_xtics.gp.
load sprintf('%s/common.gp', system('dirname ' . ARG0))
set title 'W2 — server CPU per delivery by publish rate (1000 subscribers, 100-byte events)'
set ylabel 'CPU µs per delivery (lower is better)'
set style fill solid 0.8 border -1
set boxwidth 0.8
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set key outside right top box
set xtics scale 0
load datadir . '/w2_xtics.gp'
file = datadir . '/w2_cpu.dat'
plot file using 1:4:(peer_rgb(strcol(3))) skip 1 with boxes lc rgb variable notitle, \
     file using 1:4:5:6 skip 1 with yerrorbars lc rgb 'black' pt -1 lw 1.5 notitle, \
     file using 1:4:(sprintf('%.2f', $4)) skip 1 with labels offset 0,1.2 notitle, \
     for [p in peers] NaN with boxes lc rgb peer_color(p) title p
