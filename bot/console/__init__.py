"""The volunteer console's HTTP side: accounts and login (auth), and the routes built on them."""
