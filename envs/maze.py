"""Maze: an agent in a small grid maze must find a goal cell it cannot see."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family.array import ArrayEnv, ArrayFamily, State, TaskArrays
from metarl.family.drawing import font
from metarl.family.rng import BatchRNG
from metarl.registry import register_family

SIZE = 7
N_CELLS = SIZE * SIZE
START = (3, 3)
START_CELL = START[0] * SIZE + START[1]
LAYOUTS: tuple[tuple[str, ...], ...] = (
    (  # 0: open cross, every cell within 6 moves
        ".......",
        ".##.##.",
        ".#...#.",
        ".......",
        ".#...#.",
        ".##.##.",
        ".......",
    ),
    (  # 1: a box around the start with one door to the south
        ".......",
        ".#####.",
        ".#...#.",
        ".#...#.",
        ".#...#.",
        ".##.##.",
        ".......",
    ),
    (  # 2: winding corridors
        ".....#.",
        ".###.#.",
        ".#.....",
        ".#...##",
        "...#...",
        "##.###.",
        ".......",
    ),
)
"""Wall layouts, ``#`` a wall and ``.`` a free cell; the agent starts at the centre."""
LAYOUT_NAMES = ("open cross", "box with a south door", "winding corridors")
OOD_GOALS = ((0, 0), (0, SIZE - 1), (SIZE - 1, 0), (SIZE - 1, SIZE - 1))
"""Goal cells held out of training: the four corners, the `ood` split's goals."""
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""Row and column change of actions 0 (up), 1 (right), 2 (down) and 3 (left)."""
DISTANCE_COST = 0.1
GOAL_REWARD = 1.0


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layout tables: free ``[L, row, col]``, next cell ``[L, cell, action]``, distance
    ``[L, goal, cell]``."""
    free = np.array([[[ch == "." for ch in row] for row in layout] for layout in LAYOUTS])
    next_cell = np.tile(np.arange(N_CELLS)[None, :, None], (len(LAYOUTS), 1, len(MOVES)))
    for index, row, col, action in np.ndindex(len(LAYOUTS), SIZE, SIZE, len(MOVES)):
        r, c = row + MOVES[action][0], col + MOVES[action][1]
        if free[index, row, col] and 0 <= r < SIZE and 0 <= c < SIZE and free[index, r, c]:
            next_cell[index, row * SIZE + col, action] = r * SIZE + c
    # Unreachable pairs keep N_CELLS, longer than any path; moves are symmetric, so the
    # breadth-first distance from the goal is the distance to it.
    distance = np.full((len(LAYOUTS), N_CELLS, N_CELLS), N_CELLS, dtype=np.int64)
    for index, goal in np.ndindex(len(LAYOUTS), N_CELLS):
        if not free[index].flat[goal]:
            continue
        distance[index, goal, goal] = 0
        queue = deque([goal])
        while queue:
            cell = queue.popleft()
            for neighbour in next_cell[index, cell]:
                if distance[index, goal, neighbour] == N_CELLS:
                    distance[index, goal, neighbour] = distance[index, goal, cell] + 1
                    queue.append(neighbour)
    return free, next_cell, distance


FREE, NEXT_CELL, DISTANCE = _build_tables()


@dataclass(frozen=True)
class MazeTask:
    """A hidden goal cell ``(row, col)`` in wall layout ``layout`` (an index into ``LAYOUTS``)."""

    goal: tuple[int, int]
    layout: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.layout, int) or not 0 <= self.layout < len(LAYOUTS):
            raise ValueError(
                f"maze layout {self.layout!r} is not an int in [0, {len(LAYOUTS) - 1}]"
            )
        if (
            len(self.goal) != 2
            or not all(isinstance(v, int) and 0 <= v < SIZE for v in self.goal)
            or not FREE[self.layout][self.goal]
            or tuple(self.goal) == START
        ):
            raise ValueError(
                f"maze goal {self.goal!r} is not a free cell (row, col), two Python ints, of "
                f"layout {self.layout} other than the start {START}"
            )

    @property
    def goal_cell(self) -> int:
        """The goal as a flat cell index ``row * SIZE + col``."""
        return self.goal[0] * SIZE + self.goal[1]

    @property
    def distance_from_start(self) -> int:
        """Fewest moves from the start to the goal."""
        return int(DISTANCE[self.layout, self.goal_cell, START_CELL])


def _goal_cells(layout: int, ood: bool) -> list[tuple[int, int]]:
    return [
        (row, col)
        for row, col in np.ndindex(SIZE, SIZE)
        if FREE[layout, row, col] and (row, col) != START and ((row, col) in OOD_GOALS) == ood
    ]


TRAIN_TASKS = tuple(
    MazeTask(goal=goal, layout=layout)
    for layout in range(len(LAYOUTS))
    for goal in _goal_cells(layout, ood=False)
)
OOD_TASKS = tuple(
    MazeTask(goal=goal, layout=layout)
    for layout in range(len(LAYOUTS))
    for goal in _goal_cells(layout, ood=True)
)


class MazeEnv(ArrayEnv):
    """
    ## Description
    An agent starts at the centre of a 7x7 grid maze and moves between cells; walls block it.
    Each task hides a goal cell (and picks one of three wall layouts). The agent observes only
    which cell it is in, never the goal or the walls, so it must find the goal from the rewards
    of its first episodes and then head straight for it.

    ## Action Space
    `Discrete(4)`: 0 up, 1 right, 2 down, 3 left. A move into a wall or off the grid leaves
    the agent where it is.

    ## Observation Space
    `Box(0, 1, (49,), float32)`: the one-hot encoding of the agent's cell, index
    `row * 7 + col`.

    ## Rewards
    After each move, minus 0.1 times the maze distance (fewest moves around the walls) from
    the agent to the goal; reaching the goal gives +1 instead.

    ## Adaptation
    Goals lie in every direction from the start and behind different walls, so no single
    route serves many tasks (a random walk averages about -19 per episode; the shortest
    path to the task's goal about -0.4). The observation is the one-hot cell, so a
    feed-forward policy is close to a table of per-cell action preferences, and the dense
    distance reward tells a policy-gradient step from a few episodes which moves lead to
    the goal.

    ## Episode End
    Terminates when the agent enters the goal cell; truncated after 40 steps (registration).
    Entering the goal cell is a success (`info["success"]`).

    ## Arguments
    `gymnasium.make("metarl/Maze-v0", task={"goal": [0, 5], "layout": 1}, render_mode=...)`.
    Training goals are every free cell except the start and the four corners, uniform over
    (layout, goal) pairs; the `ood` split puts the goal in a corner.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 8}
    render_size = (420, 460)

    def record(self, reset: bool) -> None:
        if reset:
            self.trail: list[int] = []
        self.trail.append(int(self.state["cell"][0]))

    def draw(self, canvas: Any) -> None:
        import pygame

        width, height = canvas.get_size()
        header = 40
        cell_px = min(width, height - header) // SIZE
        left = (width - cell_px * SIZE) // 2
        top = header + (height - header - cell_px * SIZE) // 2

        def centre(cell: int) -> tuple[int, int]:
            row, col = divmod(cell, SIZE)
            return left + col * cell_px + cell_px // 2, top + row * cell_px + cell_px // 2

        canvas.fill((245, 245, 240))
        for row, col in np.ndindex(SIZE, SIZE):
            rect = (left + col * cell_px, top + row * cell_px, cell_px, cell_px)
            wall = not FREE[self.task.layout, row, col]
            pygame.draw.rect(canvas, (60, 60, 70) if wall else (225, 228, 235), rect)
            pygame.draw.rect(canvas, (190, 192, 200), rect, 1)
        start_x, start_y = centre(START_CELL)
        pygame.draw.rect(
            canvas,
            (150, 150, 160),
            (start_x - cell_px // 3, start_y - cell_px // 3, 2 * cell_px // 3, 2 * cell_px // 3),
            2,
        )
        goal_x, goal_y = centre(self.task.goal_cell)
        pygame.draw.rect(
            canvas,
            (60, 180, 80),
            (goal_x - cell_px // 2 + 3, goal_y - cell_px // 2 + 3, cell_px - 6, cell_px - 6),
        )
        pygame.draw.line(
            canvas, (20, 90, 40), (goal_x - 6, goal_y + 12), (goal_x - 6, goal_y - 12), 3
        )
        pygame.draw.polygon(
            canvas,
            (250, 250, 250),
            [(goal_x - 5, goal_y - 12), (goal_x + 10, goal_y - 7), (goal_x - 5, goal_y - 2)],
        )
        trail = self.trail
        if len(trail) > 1:
            pygame.draw.lines(canvas, (90, 110, 200), False, [centre(c) for c in trail], 3)
        agent = centre(int(self.state["cell"][0]))
        pygame.draw.circle(canvas, (20, 40, 160), agent, cell_px // 3)
        pygame.draw.circle(canvas, (240, 240, 255), agent, cell_px // 3, 2)

        text = (
            f"{LAYOUT_NAMES[self.task.layout]}   goal {self.task.goal}   "
            f"step {self.steps}   return {self.episode_return:+.1f}"
        )
        canvas.blit(font(24).render(text, True, (30, 30, 30)), (10, 12))


class Maze(ArrayFamily):
    name = "maze"
    env_id = "metarl/Maze-v0"
    task_type = MazeTask
    max_episode_steps = 40
    splits = ("test", "ood")
    env_class = MazeEnv
    observation_space = gym.spaces.Box(0.0, 1.0, shape=(N_CELLS,), dtype=np.float32)
    action_space = gym.spaces.Discrete(len(MOVES))
    success_key = "success"

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[MazeTask]:
        return [TRAIN_TASKS[i] for i in rng.integers(len(TRAIN_TASKS), size=n)]

    def sample_ood_tasks(self, n: int, rng: np.random.Generator) -> list[MazeTask]:
        return [OOD_TASKS[i] for i in rng.integers(len(OOD_TASKS), size=n)]

    def task_params(self, tasks: Sequence[MazeTask]) -> TaskArrays:
        return {
            "layout": np.array([task.layout for task in tasks], dtype=np.int64),
            "goal": np.array([task.goal_cell for task in tasks], dtype=np.int64),
        }

    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        return {"cell": np.full(rng.batch_size, START_CELL, dtype=np.int64)}

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        action = np.asarray(action)
        if action.shape != state["cell"].shape or np.any((action < 0) | (action >= len(MOVES))):
            raise ValueError(
                f"maze actions must be integers in [0, {len(MOVES) - 1}] of shape "
                f"{state['cell'].shape}, got {action!r}"
            )
        cell = NEXT_CELL[params["layout"], state["cell"], action.astype(np.int64)]
        reached = cell == params["goal"]
        distance = DISTANCE[params["layout"], params["goal"], cell]
        reward = np.where(reached, GOAL_REWARD, -DISTANCE_COST * distance)
        return {"cell": cell}, reward, reached

    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        return (state["cell"][:, None] == np.arange(N_CELLS)).astype(np.float32)

    def succeeded(self, state: State, params: TaskArrays) -> np.ndarray:
        """In the goal cell."""
        return state["cell"] == params["goal"]

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        """A move along a shortest path to the goal (the first move, in action order, whose
        cell is nearest the goal by ``DISTANCE``). Each step then ends as near the goal as any
        path can, so the return is the best possible:
        ``1 - 0.1 * d * (d - 1) / 2`` for a goal ``d`` moves from the start."""
        layout = params["layout"][:, None]
        after = NEXT_CELL[layout, state["cell"][:, None], np.arange(len(MOVES))]
        return np.argmin(DISTANCE[layout, params["goal"][:, None], after], axis=1)


register_family(Maze.name, Maze)
