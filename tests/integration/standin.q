/ standin.q - the qmux-standin test helpers, defined in real q, so that the integration
/ tests can run against a licensed q process as well as against build/qmux-standin.
/ Start q with:  q tests/integration/standin.q -p 5001
/ Each definition returns what the stand-in returns, byte for byte where q allows.
/ NOTE: not yet run against a real q, so these definitions are unverified.

/ Table of n rows: id til n, sym cycling `a`b`c`d, price 100 + 0.25 * (i mod 100),
/ size 100 * (1 + i mod 10) as int, time 2024.01.01D09:30 plus i milliseconds.
.standin.table:{[n]
  i:til n;
  ([] id:i; sym:n#`a`b`c`d; price:100+0.25*i mod 100; size:`int$100*1+i mod 10;
      time:2024.01.01D09:30:00+1000000*i)}

/ q cannot close a handle half-way through its own response, so this closes the
/ requesting connection without any response, which a client sees as the same failure.
.standin.closeMid:{[n] hclose .z.w}

/ q writes a response whole, so this blocks the server for s seconds before the response
/ of til 1000000, where the stand-in sends half of it first.
.standin.stallMid:{[s] system "sleep ",string s; til 1000000}

/ 1b rejects every new login by closing it without a reply, 0b accepts them again.
.standin.refusing:0b
.standin.refuse:{[b] .standin.refusing::b; }
.z.pw:{[user;password] not .standin.refusing}

/ Exits at once without a response.
.standin.exit:{[x] exit 0}
