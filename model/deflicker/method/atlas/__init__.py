"""The flawed atlas of a shot: the fast atlas (mesh, registration, colour fit, texture, object layer)
and the neural atlas."""
