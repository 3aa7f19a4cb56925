// A plain express-session app on one of the Node stores, run beside sessionware by the interop
// tests. Environment: PORT, SECRET, STORE (redis | pg | mysql) and, per store, REDIS_URL + PREFIX,
// PG_URL + TABLE, or MYSQL_URL + TABLE. Prints "listening" once it accepts requests.
const express = require("express");
const session = require("express-session");

async function makeStore() {
  const kind = process.env.STORE || "redis";
  if (kind === "redis") {
    const { RedisStore } = require("connect-redis");
    const { createClient } = require("redis");
    const client = createClient({ url: process.env.REDIS_URL });
    await client.connect();
    return { store: new RedisStore({ client, prefix: process.env.PREFIX }), close: () => client.quit() };
  }
  if (kind === "pg") {
    const PgStore = require("connect-pg-simple")(session);
    const store = new PgStore({ conString: process.env.PG_URL, tableName: process.env.TABLE, pruneSessionInterval: false });
    return { store, close: () => store.close() };
  }
  const MySQLStore = require("express-mysql-session")(session);
  const url = new URL(process.env.MYSQL_URL);
  const store = new MySQLStore({
    host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password), database: url.pathname.slice(1),
    createDatabaseTable: false, clearExpired: false, schema: { tableName: process.env.TABLE },
  });
  return { store, close: () => store.close() };
}

async function main() {
  const { store, close } = await makeStore();
  const app = express();
  app.use(
    session({
      store,
      secret: process.env.SECRET,
      name: "connect.sid",
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 3600 * 1000 },
    })
  );
  app.get("/inc", (req, res) => {
    req.session.count = (req.session.count || 0) + 1;
    req.session.by = "node";
    res.json({ count: req.session.count, id: req.sessionID });
  });
  app.get("/get", (req, res) => {
    res.json({ count: req.session.count ?? null, by: req.session.by ?? null, id: req.sessionID });
  });
  const server = app.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
  process.on("SIGTERM", () => server.close(() => Promise.resolve(close()).then(() => process.exit(0))));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
