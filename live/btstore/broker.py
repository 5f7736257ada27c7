"""`AlpacaBroker`: Backtrader's broker interface on an Alpaca account.

- **Orders** (market orders, whole or fractional shares) go to Alpaca with deterministic
  client order ids, `live.execution.client_order_id(strategy_id, account, slot, symbol,
  side)`, where slot is the session the order is for (the session after the bar being
  processed, YYYYMMDD; a second order for the same symbol and side in one slot gets
  ``-2``, ``-3``...). Each is sent through `RestAdapter.submit_once`: looked up by its id
  first, never re-sent under a new id, so a restarted process or a lost answer cannot
  order twice.
- **Refused before sending** (notified ``Rejected``, the reason in ``order.info.reason``):
  an order on a bar that is not live (backfill, broken connection), any type but Market,
  brackets, the kill switch (TRADESHIP_KILL_SWITCH / _KILL_FILE), a blocked account, and
  every limit of `live.risk` (TRADESHIP_MAX_POSITION_WEIGHT, _MAX_GROSS_EXPOSURE,
  _MAX_ORDER_NOTIONAL, _MAX_RUN_NOTIONAL and _MAX_ORDERS, counted per slot).
- **Status flows back** as Backtrader notifications: Submitted when sent, Accepted when
  Alpaca has it, Partial/Completed with the executed size and Alpaca's fill price,
  Rejected/Canceled/Expired. Fills are applied in `next()` (Cerebro calls it before the
  strategy's ``next``), as Backtrader's own broker does, never in the middle of a
  ``next()``.
- **Cash and positions** come from the account (at start, after fills, and once per
  published batch of bars). ``getvalue()`` is cash plus each position at its feed's last
  completed close: what Backtrader's broker reports in a backtest, and the value a
  strategy sizes with, so sizing matches the backtest (Alpaca's intraday equity would not).
"""

from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass
from typing import Any

import backtrader as bt
from backtrader import BrokerBase
from backtrader.order import BuyOrder, Order, SellOrder
from backtrader.position import Position

from live.alpaca_broker import BrokerError, BrokerRejected
from live.btstore.sessions import NEW_YORK
from live.btstore.store import AlpacaStore
from live.execution import PlannedOrder, planned_order, value_at_close
from live.risk import pretrade_problems, trading_refusal

OPEN = frozenset({"new", "accepted", "pending_new", "accepted_for_bidding", "calculated"})
OPEN |= {"held", "pending_replace", "pending_cancel", "partially_filled"}
TERMINAL = {
    "filled": "completed",
    "canceled": "cancel",
    "expired": "expire",
    "done_for_day": "expire",
    "replaced": "cancel",
    "rejected": "reject",
    "suspended": "reject",
    "stopped": "completed",
}


def _symbol(data: Any) -> str:
    """The Alpaca symbol of a feed (its ``dataname``), whatever Cerebro named it."""
    return getattr(data, "symbol", None) or data._name


@dataclass
class Tracked:
    """One order the broker sent (or will re-send under the same id)."""

    order: Order
    planned: PlannedOrder
    slot: str
    answer: dict[str, Any] | None = None  # the broker's latest view
    applied: str = ""  # the last status turned into a notification
    filled: float = 0.0
    filled_value: float = 0.0
    unsent: bool = False  # no answer yet (broker unreachable): look up / send again
    resend_at: float = 0.0
    done: bool = False


class AlpacaBroker(BrokerBase):
    """Backtrader broker on an Alpaca account (see the module docstring).

    Params:

    - ``use_positions`` (True): start from the account's positions (False: ignore them,
      track only this run's fills).
    - ``strategy_id`` ("backtrader"): names the strategy in client order ids; two runs with
      the same id, account and slot share ids, so they cannot both trade a slot.
    - ``order_poll`` (5.0 s): how often open orders are read while any is open.
    - ``resend_after`` (5.0 s): how long an order whose answer was lost waits before it is
      looked up and, if absent, sent again under the same id.
    """

    params = (
        ("journal", None),  # a live.journal Journal: runs and orders, as run() journals them
        ("use_positions", True),
        ("strategy_id", "backtrader"),
        ("order_poll", 5.0),
        ("resend_after", 5.0),
    )

    def __init__(self, store: AlpacaStore | None = None) -> None:
        super().__init__()
        if store is None:
            raise ValueError("AlpacaBroker needs its store: use store.getbroker()")
        self.store = store
        self.rest = store.rest
        self.settings = store.settings
        self.notifs: collections.deque = collections.deque()
        self.cash = self.value = 0.0
        self.startingcash = self.startingvalue = 0.0
        self.account: dict[str, Any] = {}
        self.positions: dict[str, Position] = {}
        self._marks: dict[str, float] = {}
        self._tracked: dict[str, Tracked] = {}
        self._slot_orders: dict[str, list[PlannedOrder]] = collections.defaultdict(list)
        self._slot_seq: collections.Counter = collections.Counter()
        self._stale = False
        self._next_order_poll = 0.0
        self.sent: list[dict[str, Any]] = []  # every order handed to Alpaca, in order
        self._journal_runs: dict[str, str] = {}  # slot -> journal run id
        self._journaled_status: dict[str, str] = {}  # client order id -> last broker status

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.store.start(broker=self)
        self.refresh()
        self.startingcash = self.cash
        self.startingvalue = self.getvalue()

    def stop(self) -> None:
        super().stop()

    def mark_stale(self) -> None:
        """New bars were published: read cash and positions before the strategy runs."""
        self._stale = True

    def refresh(self) -> None:
        """Cash, account id, gate flags and positions from Alpaca."""
        account = self.rest.account()
        self.account = account
        self.cash = float(account["cash"])
        if self.p.use_positions:
            rows = self.rest.position_rows()
            self.positions = {
                str(r["symbol"]): Position(float(r["qty"]), float(r["avg_entry_price"]))
                for r in rows
            }
            self._marks = {str(r["symbol"]): float(r["current_price"]) for r in rows}
        self._stale = False

    # -- Backtrader's broker interface -------------------------------------------------------
    def getcash(self) -> float:
        return self.cash

    def _price(self, symbol: str) -> float:
        feed = self._feed(symbol)
        if feed is not None and len(feed):
            return float(feed.close[0])
        return self._marks.get(symbol, 0.0)

    def _feed(self, symbol: str) -> Any:
        for feed in self.store.feeds:
            if feed.symbol == symbol:
                return feed
        return None

    def getvalue(self, datas: Any = None) -> float:
        if datas:
            return sum(self.getposition(d).size * self._price(_symbol(d)) for d in datas if len(d))
        held = {s: pos.size for s, pos in self.positions.items() if pos.size}
        self.value = value_at_close(self.cash, held, {s: self._price(s) for s in held})
        return self.value

    def get_value(self, datas: Any = None) -> float:
        return self.getvalue(datas)

    def getposition(self, data: Any, clone: bool = True) -> Position:
        pos = self.positions.setdefault(_symbol(data), Position())
        return pos.clone() if clone else pos

    def orderstatus(self, order: Order) -> int:
        return order.status

    def get_notification(self) -> Order | None:
        return self.notifs.popleft() if self.notifs else None

    def notify(self, order: Order) -> None:
        self.notifs.append(order.clone())

    def buy(
        self,
        owner,
        data,
        size,
        price=None,
        plimit=None,
        exectype=None,
        valid=None,
        tradeid=0,
        oco=None,
        trailamount=None,
        trailpercent=None,
        parent=None,
        transmit=True,
        **kwargs,
    ):
        return self._new_order(
            BuyOrder,
            owner,
            data,
            size,
            price,
            plimit,
            exectype,
            valid,
            tradeid,
            oco,
            trailamount,
            trailpercent,
            parent,
            transmit,
            **kwargs,
        )

    def sell(
        self,
        owner,
        data,
        size,
        price=None,
        plimit=None,
        exectype=None,
        valid=None,
        tradeid=0,
        oco=None,
        trailamount=None,
        trailpercent=None,
        parent=None,
        transmit=True,
        **kwargs,
    ):
        return self._new_order(
            SellOrder,
            owner,
            data,
            size,
            price,
            plimit,
            exectype,
            valid,
            tradeid,
            oco,
            trailamount,
            trailpercent,
            parent,
            transmit,
            **kwargs,
        )

    def _new_order(
        self,
        order_cls,
        owner,
        data,
        size,
        price,
        plimit,
        exectype,
        valid,
        tradeid,
        oco,
        trailamount,
        trailpercent,
        parent,
        transmit,
        **kwargs,
    ):
        """Backtrader's buy()/sell() signature, one body: only the order class differs."""
        order = order_cls(
            owner=owner,
            data=data,
            size=size,
            price=price,
            pricelimit=plimit,
            exectype=exectype,
            valid=valid,
            tradeid=tradeid,
            oco=oco,
            trailamount=trailamount,
            trailpercent=trailpercent,
            parent=parent,
            transmit=transmit,
        )
        order.addinfo(**kwargs)
        order.addcomminfo(self.getcommissioninfo(data))
        return self._place(order, parent, transmit)

    def cancel(self, order: Order) -> None:
        for tracked in self._tracked.values():
            if tracked.order.ref != order.ref or tracked.done:
                continue
            answer = tracked.answer
            if answer is None:
                self._finish(tracked, "cancel", "canceled before Alpaca acknowledged it")
                return
            try:
                self.rest.call(
                    f"canceling {tracked.planned.client_order_id}",
                    lambda a=answer: self.rest.client.cancel_order_by_id(a["id"]),
                )
            except BrokerError as exc:
                self.store.put_notification(f"cancel of {answer['client_order_id']}: {exc}")
            self._next_order_poll = 0.0  # read the outcome at the next next()
            return

    # -- sending -----------------------------------------------------------------------------
    def _refuse(self, order: Order, reason: str, slot: str | None = None) -> Order:
        order.addinfo(reason=reason)
        order.reject(self)
        self.notify(order)
        self.store.put_notification(f"order refused: {reason}")
        run_id = self._journal_run(slot)
        if run_id is not None:
            self.p.journal.update_run(run_id, status="blocked", message=f"refused: {reason}")
        return order

    # -- the journal (same records as an exported run(): `tradeship journal` shows both) ------
    def _journal_run(self, slot: str | None) -> str | None:
        """The journal run of a live slot (started at its first order), or None."""
        if self.p.journal is None or slot is None:
            return None
        if slot not in self._journal_runs:
            from live.journal import new_run_id

            run_id = new_run_id(slot)
            self.p.journal.start_run(
                {
                    "run_id": run_id,
                    "strategy_id": self.p.strategy_id,
                    "slot": slot,
                    "as_of": (self.store.clock_time or dt.datetime.now(dt.UTC)).isoformat(),
                    "dry_run": False,
                    "strategy_hash": "",
                    "message": "tradeship live (Backtrader)",
                }
            )
            self._journal_runs[slot] = run_id
        return self._journal_runs[slot]

    def _journal_order(self, tracked: Tracked, **fields: Any) -> None:
        run_id = self._journal_run(tracked.slot)
        if run_id is None:
            return
        coid = tracked.planned.client_order_id
        status = fields.get("broker_status")
        if status is not None:
            self._journaled_status[coid] = status
        self.p.journal.update_order(run_id, coid, **fields)
        count = sum(1 for t in self._tracked.values() if t.slot == tracked.slot)
        self.p.journal.update_run(run_id, status="done", message=f"{count} order(s)")

    def _place(self, order: Order, parent: Any, transmit: bool) -> Order:
        data = order.data
        symbol = _symbol(data)
        side = "buy" if order.isbuy() else "sell"
        if parent is not None or not transmit:
            return self._refuse(order, "bracket/child orders are not supported live")
        if order.exectype not in (None, Order.Market):
            kind = order.getordername()
            return self._refuse(order, f"{symbol}: only market orders go to Alpaca, not {kind}")
        if not getattr(data, "is_live", lambda: False)():
            status = data._getstatusname(data._laststatus) if data._laststatus else "none"
            return self._refuse(
                order,
                f"{symbol}: the bar is not live (data status {status}): orders are only "
                "sent on the latest completed session, never during backfill",
            )
        bar_day = self.store.current_bar_day()
        slot = self.store.next_session(bar_day).strftime("%Y%m%d")
        refusal = trading_refusal(self.settings, self.account)
        if refusal:
            return self._refuse(order, f"{symbol}: {refusal}", slot)
        qty = round(abs(float(order.created.size)), 6)
        if qty <= 0:
            return self._refuse(order, f"{symbol}: quantity {order.created.size} rounds to 0")
        self._slot_seq[(slot, symbol, side)] += 1
        seq = self._slot_seq[(slot, symbol, side)]
        planned = planned_order(
            symbol,
            side,
            qty,
            float(self._price(symbol)),
            strategy_id=self.p.strategy_id,
            account=str(self.account.get("id", "")),
            slot=slot,
            id_slot=slot if seq == 1 else f"{slot}-{seq}",
        )
        prior = self._slot_orders[slot]
        breached = sorted(set(self._risk(prior + [planned])) - set(self._risk(prior)))
        if breached:
            return self._refuse(order, "risk limits: " + "; ".join(breached), slot)
        order.addinfo(client_order_id=planned.client_order_id, slot=slot)
        order.submit(self)
        self.notify(order)
        tracked = Tracked(order, planned, slot)
        self._tracked[planned.client_order_id] = tracked
        run_id = self._journal_run(slot)
        if run_id is not None:  # journaled before it is sent, like run()'s orders
            self.p.journal.record_order(
                run_id,
                {
                    "client_order_id": planned.client_order_id,
                    "symbol": symbol,
                    "side": side,
                    "qty": qty,
                    "state": "planned",
                },
            )
        self._send(tracked)
        return order

    def _risk(self, orders: list[PlannedOrder]) -> list[str]:
        """The pre-trade gate of every live run (`live.risk.pretrade_problems`): the
        positions these orders would leave, the book valued at the bars' last closes."""
        qty = {s: p.size for s, p in self.positions.items() if p.size}
        symbols = set(qty) | {o.symbol for o in orders}
        prices = {s: float(self._price(s)) for s in symbols}
        return pretrade_problems(orders, qty, self.cash, prices, self.settings)

    def _send(self, tracked: Tracked) -> None:
        planned = tracked.planned
        try:
            self.rest.fresh_budget()
            answer = self.rest.submit_once(planned)
        except BrokerRejected as exc:
            self._journal_order(tracked, state="rejected", answer=str(exc))
            self._finish(tracked, "reject", str(exc))
            return
        except BrokerError as exc:
            self._journal_order(tracked, state="unknown")
            tracked.unsent = True
            tracked.resend_at = self.rest._monotonic() + float(self.p.resend_after)
            self.store.put_notification(
                f"no answer for {planned.client_order_id} ({exc}): it will be looked up and, "
                "if Alpaca does not have it, sent again under the same id"
            )
            return
        tracked.unsent = False
        outcome = answer.get("outcome")
        self._journal_order(
            tracked,
            state="sent" if outcome != "already_traded_in_slot" else "rejected",
            broker_order_id=answer.get("id"),
            broker_status=answer.get("status"),
            answer={k: str(v) for k, v in answer.items()},
        )
        if outcome == "already_traded_in_slot":
            self._finish(
                tracked,
                "reject",
                f"{planned.symbol}: this slot already traded it the other way "
                f"({answer['client_order_id']})",
            )
            return
        if outcome == "already_submitted" and (
            abs(float(answer["qty"]) - planned.qty) > 1e-9 or answer["side"] != planned.side
        ):
            self._finish(
                tracked,
                "reject",
                f"{planned.symbol}: this slot already has order {answer['client_order_id']} "
                f"for {answer['qty']:g} (asked {planned.qty:g})",
            )
            return
        tracked.answer = answer
        self._slot_orders[tracked.slot].append(planned)
        self.sent.append({**planned.as_dict(), "slot": tracked.slot, "outcome": outcome})
        self.store.put_notification(
            f"{outcome}: {planned.side} {planned.qty:g} {planned.symbol} "
            f"({planned.client_order_id}) -> {answer['status']}"
        )

    def _resend(self, tracked: Tracked) -> None:
        """An order whose answer was lost: send it again under its id (found, not re-sent,
        if Alpaca has it), unless its session is over: then only look it up."""
        done = self.store.completed_session()
        if done is None or done.strftime("%Y%m%d") < tracked.slot:
            self._send(tracked)
            return
        try:
            self.rest.fresh_budget()
            found = self.rest.order_by_client_id(tracked.planned.client_order_id)
        except BrokerError:
            tracked.resend_at = self.rest._monotonic() + float(self.p.resend_after)
            return
        if found is None:
            tracked.unsent = False
            self._journal_order(tracked, state="never_sent")
            self._finish(tracked, "expire", "never reached Alpaca before its session ended")
            return
        tracked.unsent = False
        tracked.answer = {**found, "outcome": "already_submitted"}
        self._journal_order(
            tracked, state="sent", broker_order_id=found["id"], broker_status=found["status"]
        )
        self._slot_orders[tracked.slot].append(tracked.planned)

    # -- status and fills (Cerebro calls next() before each strategy next) -----------------------
    def next(self) -> None:
        now = self.rest._monotonic()
        for tracked in list(self._tracked.values()):
            if tracked.unsent and not tracked.done and now >= tracked.resend_at:
                self._resend(tracked)
        waiting = [t for t in self._tracked.values() if not t.done and t.answer is not None]
        due = now >= self._next_order_poll or self._stale  # fresh before a new bar's next()
        if any(t.answer["status"] in OPEN for t in waiting) and due:
            self._next_order_poll = now + float(self.p.order_poll)
            self._poll_orders(waiting)
        filled = False
        for tracked in waiting:
            filled |= self._apply(tracked)
        if filled or self._stale:
            try:
                self.refresh()
            except BrokerError as exc:
                self.store.put_notification(f"reading the account failed ({exc}); kept the last")

    def _poll_orders(self, waiting: list[Tracked]) -> None:
        self.rest.fresh_budget()
        times = [t.answer.get("submitted_at") for t in waiting if t.answer.get("submitted_at")]
        try:
            if times:
                after = min(times) - dt.timedelta(seconds=1)
                found = {o["client_order_id"]: o for o in self.rest.orders_since(after)}
            else:
                found = {}
            for tracked in waiting:
                coid = tracked.planned.client_order_id
                answer = found.get(coid) or self.rest.order_by_client_id(coid)
                if answer is not None:
                    tracked.answer = {**answer, "outcome": tracked.answer.get("outcome")}
        except BrokerError as exc:
            self.store.put_notification(f"reading orders failed ({exc}); will retry")

    def _apply(self, tracked: Tracked) -> bool:
        """Turn the broker's view of one order into notifications; True on a new fill."""
        answer = tracked.answer
        order = tracked.order
        status = str(answer["status"])
        if self._journaled_status.get(tracked.planned.client_order_id, status) != status:
            self._journal_order(tracked, broker_status=status)
        if order.status == Order.Submitted and status not in ("rejected", "suspended"):
            order.accept(self)
            self.notify(order)
            tracked.applied = "accepted"
        new_fill = False
        filled = float(answer.get("filled_qty") or 0.0)
        if filled > tracked.filled + 1e-12 and answer.get("filled_avg_price") is not None:
            total_value = filled * float(answer["filled_avg_price"])
            size = filled - tracked.filled
            price = (total_value - tracked.filled_value) / size
            tracked.filled, tracked.filled_value = filled, total_value
            self._execute(order, size, price, answer.get("filled_at"))  # Partial/Completed
            self.notify(order)
            new_fill = True
        action = TERMINAL.get(status)
        if action is not None:
            reason = answer.get("reject_reason") or f"Alpaca status {status}"
            self._finish(tracked, action, reason)
        return new_fill

    def _execute(self, order: Order, size: float, price: float, when: Any) -> None:
        signed = size if order.isbuy() else -size
        pos = self.getposition(order.data, clone=False)
        old_price = pos.price
        psize, pprice, opened, closed = pos.update(signed, price)
        closedvalue = abs(closed) * old_price
        pnl = -closed * (price - old_price)
        stamp = when if isinstance(when, dt.datetime) else None
        if stamp is not None and stamp.tzinfo is not None:
            stamp = stamp.astimezone(NEW_YORK).replace(tzinfo=None)
        dtnum = bt.date2num(stamp) if stamp is not None else order.data.datetime[0]
        order.execute(
            dtnum,
            signed,
            price,
            closed,
            closedvalue,
            0.0,
            opened,
            abs(opened) * price,
            0.0,
            0.0,
            pnl,
            psize,
            pprice,
        )

    def _finish(self, tracked: Tracked, action: str, reason: str) -> None:
        order = tracked.order
        tracked.done = True
        if action == "completed":
            if order.status != Order.Completed:
                order.completed()
                self.notify(order)
            return
        order.addinfo(reason=reason)
        if action == "reject":
            order.reject(self)
        elif action == "cancel":
            order.cancel()
        else:  # Backtrader's Order.expire() refuses market orders: Alpaca expired it
            order.status = Order.Expired
        self.notify(order)
        if action == "reject":
            self.store.put_notification(f"order rejected: {reason}")


AlpacaStore.BrokerCls = AlpacaBroker
