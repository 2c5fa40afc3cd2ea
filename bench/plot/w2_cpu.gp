# W2: server CPU time per delivered event, by peer: the median bar, with the rounds' min and max.
load sprintf('%s/common.gp', system('dirname ' . ARG0))
set title 'W2 — server CPU per delivery (1000 subscribers, 100-byte events)'
set ylabel 'CPU µs per delivery (lower is better)'
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
set key off
set xtics scale 0
file = datadir . '/w2_cpu.dat'
plot file using 0:2:(peer_rgb(strcol(1))):xtic(1) \
       skip 1 with boxes lc rgb variable, \
     file using 0:2:3:4 skip 1 with yerrorbars lc rgb 'black' pt -1 lw 1.5, \
     file using 0:2:(sprintf('%.2f', $2)) skip 1 with labels offset 0,1.2
