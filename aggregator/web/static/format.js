// Times in the hall's timezone, durations, and the hall-local midnight of today.
import { locale, t } from "./i18n.js";

function fmt(iso, tz, options) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(locale(), { timeZone: tz || undefined, hour12: false, ...options })
    .format(new Date(iso));
}

/** "10:05" (hall-local). */
export function clock(iso, tz) {
  return fmt(iso, tz, { hour: "2-digit", minute: "2-digit" });
}

/** "10:05:30" (hall-local). */
export function clockSeconds(iso, tz) {
  return fmt(iso, tz, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** "11-02 10:05" (hall-local). */
export function dateTime(iso, tz) {
  return fmt(iso, tz, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

/** "2026-11-02" (hall-local). */
export function isoDay(date, tz) {
  // en-CA formats dates as YYYY-MM-DD
  return new Intl.DateTimeFormat("en-CA", { timeZone: tz || undefined }).format(date);
}

/** A duration in seconds, "12分钟" / "12 min". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return t("dur.s", { n: s });
  if (s < 3600) return t("dur.m", { n: Math.floor(s / 60) });
  return t("dur.h", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}

/** Seconds from iso until now (or until endIso). */
export function secondsSince(iso, endIso) {
  const end = endIso ? new Date(endIso).getTime() : Date.now();
  return Math.max(0, (end - new Date(iso).getTime()) / 1000);
}

/** Offset of tz from UTC at instant ms, in ms. */
function tzOffset(tz, ms) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const v = Object.fromEntries(parts.map((p) => [p.type, Number(p.value)]));
  return Date.UTC(v.year, v.month - 1, v.day, v.hour, v.minute, v.second) - Math.floor(ms / 1000) * 1000;
}

/** The instant (Date) of the hall-local midnight starting day "YYYY-MM-DD" in tz. */
export function zonedMidnight(day, tz) {
  const [y, m, d] = day.split("-").map(Number);
  const guess = Date.UTC(y, m - 1, d);
  let at = guess - tzOffset(tz, guess);
  at = guess - tzOffset(tz, at); // again, in case the offset changed in between (DST)
  return new Date(at);
}

/** "YYYY-MM-DD" of the day `offset` days from today in tz. */
export function dayOffset(tz, offset) {
  const today = isoDay(new Date(), tz);
  const [y, m, d] = today.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + offset)).toISOString().slice(0, 10);
}
